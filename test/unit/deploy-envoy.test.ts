/**
 * deploy/envoy/*.yaml are decoded as Envoy would decode them: YAML to JSON, then proto3 JSON into
 * envoy.config.bootstrap.v3.Bootstrap from Envoy's own API protos, every typed_config resolved by its type
 * URL, unknown fields rejected. No Envoy binary is needed, and a typo in a field name fails here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type * as protobuf from 'protobufjs';
import { parse } from 'yaml';
import { checkProtoJson, ENVOY_INCLUDE_DIRS, loadProtos } from '../support/proto-json';

const DEPLOY = path.join(__dirname, '../../deploy/envoy');
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

// The bootstrap and every type the examples put in a typed_config.
const PROTO_FILES = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

type Json = Record<string, unknown>;

let root: protobuf.Root;

beforeAll(() => {
  root = loadProtos(PROTO_FILES, ENVOY_INCLUDE_DIRS);
});

function load(file: string): Json {
  return parse(readFileSync(path.join(DEPLOY, file), 'utf8')) as Json;
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
  test('decodes as an Envoy v3 bootstrap with every typed_config resolved', () => {
    expect(checkProtoJson(root, BOOTSTRAP, load(file))).toEqual([]);
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
describe('the decoder rejects what Envoy rejects', () => {
  const errorsAfter = (edit: (config: Json) => void) => {
    const config = load('envoy.yaml');
    edit(config);
    return checkProtoJson(root, BOOTSTRAP, config);
  };
  const extAuthz = (config: Json) => at(filter(config, 'envoy.filters.http.ext_authz'), 'typed_config');

  test('a misspelled field inside a typed_config (resolved through its @type)', () => {
    const errors = errorsAfter((c) => {
      const e = extAuthz(c);
      e.failure_mode_alow = e.failure_mode_allow;
      delete e.failure_mode_allow;
    });
    expect(errors).toEqual([expect.stringMatching(/<ExtAuthz>\.failure_mode_alow: unknown field/)]);
  });

  test('a misspelled field at the top of the bootstrap', () => {
    expect(errorsAfter((c) => Object.assign(c, { static_resource: {} }))).toEqual([
      expect.stringMatching(/Bootstrap\.static_resource: unknown field/),
    ]);
  });

  test('a misspelled field in a per-route ExtAuthzPerRoute', () => {
    const errors = errorsAfter((c) => {
      const perRoute = at(route(c, 'generate'), 'typed_per_filter_config', 'envoy.filters.http.ext_authz');
      perRoute.check_setting = perRoute.check_settings;
      delete perRoute.check_settings;
    });
    expect(errors).toContainEqual(expect.stringMatching(/<ExtAuthzPerRoute>\.check_setting: unknown field/));
    // …and, the only member of its oneof gone, the per-route config now says nothing.
    expect(errors).toContainEqual(expect.stringMatching(/needs one of disabled, check_settings/));
  });

  test('an unknown @type', () => {
    const errors = errorsAfter((c) => {
      filter(c, 'envoy.filters.http.router').typed_config = {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr',
      };
    });
    expect(errors).toEqual([expect.stringMatching(/Routr is not a known message type/)]);
  });

  test('an enum value that does not exist', () => {
    const errors = errorsAfter((c) =>
      Object.assign(extAuthz(c), { status_on_error: { code: 'Unavailable' } }),
    );
    expect(errors).toEqual([expect.stringMatching(/"Unavailable" is not a value of enum StatusCode/)]);
  });

  test('a timeout that is not a duration', () => {
    const errors = errorsAfter((c) => Object.assign(at(extAuthz(c), 'grpc_service'), { timeout: 3000 }));
    expect(errors).toEqual([expect.stringMatching(/grpc_service\.timeout: expected a duration/)]);
  });

  test('a required oneof left empty and a required string missing', () => {
    const errors = errorsAfter((c) => {
      at(extAuthz(c), 'grpc_service').envoy_grpc = {};
    });
    expect(errors).toEqual([expect.stringMatching(/envoy_grpc\.cluster_name: is required/)]);
    const none = errorsAfter((c) => {
      delete at(extAuthz(c), 'grpc_service').envoy_grpc;
    });
    expect(none).toEqual([expect.stringMatching(/grpc_service: needs one of envoy_grpc, google_grpc/)]);
  });

  test('two members of one oneof', () => {
    const errors = errorsAfter((c) => {
      Object.assign(extAuthz(c), {
        http_service: { server_uri: { uri: 'http://x', cluster: 'x', timeout: '1s' } },
      });
    });
    expect(errors).toEqual([expect.stringMatching(/sets grpc_service and http_service/)]);
  });
});
