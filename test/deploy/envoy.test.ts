/**
 * deploy/envoy/*.yaml are checked with Envoy's own definitions, no Envoy binary needed: meshcheck decodes
 * each file with go-control-plane (v1.40.0) into envoy.config.bootstrap.v3.Bootstrap, unknown fields and
 * unknown @types rejected, every typed_config resolved, and runs the generated ValidateAll() on every
 * message (the protoc-gen-validate rules Envoy applies on load), plus what those rules cannot see: every
 * cluster a route or the ext_authz service names is defined.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { ENSURE_TOOLS_TIMEOUT_MS, ensureDeployTools, meshcheck } from '../support/deploy-tools';

const DEPLOY = path.join(__dirname, '../../deploy/envoy');

type Json = Record<string, unknown>;

let scratch: string;

beforeAll(() => {
  ensureDeployTools();
  scratch = mkdtempSync(path.join(tmpdir(), 'plannt-envoy-'));
}, ENSURE_TOOLS_TIMEOUT_MS);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function load(file: string): Json {
  return parse(readFileSync(path.join(DEPLOY, file), 'utf8')) as Json;
}

/** meshcheck's problems for a config (written as JSON, which is YAML), without the file prefix. */
function check(config: Json): string[] {
  const file = path.join(scratch, 'bootstrap.json');
  writeFileSync(file, JSON.stringify(config));
  const result = meshcheck('envoy', [file]);
  if (result.status === 2 || result.stderr) throw new Error(`meshcheck failed: ${result.stderr}`);
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => line.slice(file.length + 2))
    .filter((line) => line !== 'ok');
}

/** Walks a decoded config by keys and list indexes, failing loudly if the path is not there. */
function at(value: unknown, ...keys: (string | number)[]): Json {
  let node = value;
  for (const key of keys) {
    node = (node as Record<string | number, unknown> | undefined)?.[key];
    if (node === undefined) throw new Error(`no ${keys.join('.')} in the example`);
  }
  return node as Json;
}

const hcm = (config: Json) =>
  at(config, 'static_resources', 'listeners', 0, 'filter_chains', 0, 'filters', 0);
const filter = (config: Json, name: string) =>
  (at(hcm(config), 'typed_config', 'http_filters') as unknown as Json[]).find((f) => f.name === name) ?? {};
const route = (config: Json, name: string) =>
  (at(hcm(config), 'typed_config', 'route_config', 'virtual_hosts', 0, 'routes') as unknown as Json[]).find(
    (r) => r.name === name,
  ) ?? {};

describe.each(['envoy.yaml', 'envoy-http-service.yaml'])('deploy/envoy/%s', (file) => {
  test('passes go-control-plane: decoding with every typed_config resolved, ValidateAll, cluster references', () => {
    const result = meshcheck('envoy', [path.join(DEPLOY, file)]);
    expect(result.stdout.trim()).toBe(`${path.join(DEPLOY, file)}: ok`);
    expect(result.status).toBe(0);
  });

  test('never fails open, and answers 503 when Plannt cannot be reached', () => {
    const extAuthz = at(filter(load(file), 'envoy.filters.http.ext_authz'), 'typed_config');
    expect(extAuthz.failure_mode_allow).toBe(false);
    expect(extAuthz.status_on_error).toEqual({ code: 'ServiceUnavailable' });
  });

  test('the health route skips authorization', () => {
    const perRoute = at(
      route(load(file), 'health'),
      'typed_per_filter_config',
      'envoy.filters.http.ext_authz',
    );
    expect(perRoute).toMatchObject({ disabled: true });
  });
});

describe('deploy/envoy/envoy.yaml (gRPC)', () => {
  const config = load('envoy.yaml');

  test('calls Plannt over gRPC v3 with a timeout long enough to create an invoice', () => {
    const extAuthz = at(filter(config, 'envoy.filters.http.ext_authz'), 'typed_config');
    expect(extAuthz.transport_api_version).toBe('V3');
    expect(at(extAuthz, 'grpc_service', 'envoy_grpc')).toEqual({ cluster_name: 'plannt' });
    expect(Number.parseFloat(String(at(extAuthz, 'grpc_service').timeout))).toBeGreaterThanOrEqual(2);
  });

  test('sets a route’s price in context_extensions', () => {
    const perRoute = at(route(config, 'generate'), 'typed_per_filter_config', 'envoy.filters.http.ext_authz');
    expect(at(perRoute, 'check_settings', 'context_extensions')).toEqual({
      'plannt.service': 'inference',
      'plannt.route': 'generate',
      'plannt.price_sats': '10',
    });
  });

  test('speaks HTTP/2 to the plannt cluster', () => {
    const cluster = (at(config, 'static_resources', 'clusters') as unknown as Json[]).find(
      (c) => c.name === 'plannt',
    );
    const options = at(cluster, 'typed_extension_protocol_options');
    expect(Object.values(options)[0]).toMatchObject({ explicit_http_config: { http2_protocol_options: {} } });
  });
});

/** The checker must catch what Envoy would reject, or the passing test above means nothing. */
describe('go-control-plane rejects what Envoy rejects', () => {
  const errorsAfter = (edit: (config: Json) => void) => {
    const config = load('envoy.yaml');
    edit(config);
    return check(config);
  };
  const extAuthz = (config: Json) => at(filter(config, 'envoy.filters.http.ext_authz'), 'typed_config');
  const cluster = (config: Json, name: string) =>
    (at(config, 'static_resources', 'clusters') as unknown as Json[]).find((c) => c.name === name) ?? {};

  test('the unbroken file has no problem (the edits below are the only cause)', () => {
    expect(errorsAfter(() => {})).toEqual([]);
  });

  test.each<[string, (c: Json) => void, RegExp]>([
    [
      'a misspelled field inside a typed_config (resolved through its @type)',
      (c) => {
        const e = extAuthz(c);
        e.failure_mode_alow = e.failure_mode_allow;
        delete e.failure_mode_allow;
      },
      /unknown field "failure_mode_alow"/,
    ],
    [
      'a misspelled field at the top of the bootstrap',
      (c) => Object.assign(c, { static_resource: {} }),
      /unknown field "static_resource"/,
    ],
    [
      'an unknown @type',
      (c) => {
        filter(c, 'envoy.filters.http.router').typed_config = {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr',
        };
      },
      /Routr/,
    ],
    [
      'an enum value that does not exist',
      (c) => Object.assign(extAuthz(c), { status_on_error: { code: 'Unavailable' } }),
      /invalid value for enum.*Unavailable/,
    ],
    [
      'a timeout that is not a duration',
      (c) => Object.assign(at(extAuthz(c), 'grpc_service'), { timeout: 3000 }),
      /unexpected token 3000/,
    ],
    [
      'a required string left empty (the ext_authz cluster name)',
      (c) => {
        at(extAuthz(c), 'grpc_service').envoy_grpc = {};
      },
      /EnvoyGrpc.ClusterName: value length must be at least 1/,
    ],
    [
      'a port out of range',
      (c) => {
        const address = at(
          cluster(c, 'plannt'),
          'load_assignment',
          'endpoints',
          0,
          'lb_endpoints',
          0,
          'endpoint',
          'address',
          'socket_address',
        );
        address.port_value = 99999;
      },
      /PortValue: value must be less than or equal to 65535/,
    ],
    [
      'a zero connect_timeout',
      (c) => Object.assign(cluster(c, 'plannt'), { connect_timeout: '0s' }),
      /ConnectTimeout: value must be greater than 0s/,
    ],
    [
      'a route to a cluster that is not defined',
      (c) => {
        const action = at(route(c, 'generate'), 'route');
        action.cluster = 'apii';
      },
      /cluster "apii" is not defined in static_resources.clusters/,
    ],
    [
      'an ext_authz service pointing at a cluster that is not defined',
      (c) => {
        at(extAuthz(c), 'grpc_service', 'envoy_grpc').cluster_name = 'plant';
      },
      /cluster "plant" is not defined/,
    ],
  ])('%s', (_name, edit, message) => {
    const errors = errorsAfter(edit);
    expect(errors).toEqual([expect.stringMatching(message)]);
  });
});
