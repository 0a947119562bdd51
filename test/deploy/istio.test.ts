/**
 * deploy/istio/*.yaml checked with Istio's own definitions: meshcheck decodes each document's spec strictly
 * into istio.io/api's Go types (AuthorizationPolicy; an IstioOperator's spec.meshConfig into MeshConfig),
 * so an unknown or misspelled field, a wrong type or an unknown enum value fails as istiod would refuse it,
 * and every field Istio has (targetRefs, serviceAccounts, clearRouteCache, …) is known.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { ENSURE_TOOLS_TIMEOUT_MS, ensureDeployTools, meshcheck } from '../support/deploy-tools';

const DEPLOY = path.join(__dirname, '../../deploy/istio');

type Json = Record<string, unknown>;
interface Provider {
  name: string;
  envoyExtAuthzGrpc: Json;
}
interface Operator {
  spec: { meshConfig: { extensionProviders: Provider[] } };
}
interface Policy {
  spec: Json & {
    action?: string;
    provider?: { name: string };
    rules?: { from?: Json[]; to?: { operation: Json }[] }[];
  };
}

let scratch: string;
beforeAll(() => {
  ensureDeployTools();
  scratch = mkdtempSync(path.join(tmpdir(), 'plannt-istio-'));
}, ENSURE_TOOLS_TIMEOUT_MS);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function load<T>(file: string): T {
  return parse(readFileSync(path.join(DEPLOY, file), 'utf8')) as T;
}

/** meshcheck's problems for one resource, without the file prefix; [] when Istio accepts it. */
function check(resource: unknown): string[] {
  const file = path.join(scratch, 'resource.json');
  writeFileSync(file, JSON.stringify(resource));
  const result = meshcheck('istio', [file]);
  if (result.status === 2 || result.stderr) throw new Error(`meshcheck failed: ${result.stderr}`);
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => line.slice(file.length + 2))
    .filter((line) => line !== 'ok');
}

const provider = () => load<Operator>('extension-provider.yaml').spec.meshConfig.extensionProviders[0];

describe('deploy/istio/*.yaml', () => {
  test.each(['extension-provider.yaml', 'authorization-policy.yaml'])(
    '%s decodes into istio.io/api types',
    (file) => {
      const result = meshcheck('istio', [path.join(DEPLOY, file)]);
      expect(result.stdout.trim()).toBe(`${path.join(DEPLOY, file)}: ok`);
      expect(result.status).toBe(0);
    },
  );
});

describe('deploy/istio/extension-provider.yaml', () => {
  test('fails closed with 503, gives invoice creation time, and targets Plannt’s gRPC port', () => {
    expect(provider()?.envoyExtAuthzGrpc).toMatchObject({
      port: 9001,
      timeout: '3s',
      failOpen: false,
      statusOnError: '503',
    });
  });

  test('a misspelled field is rejected', () => {
    const config = load<Operator>('extension-provider.yaml');
    const grpc = config.spec.meshConfig.extensionProviders[0]?.envoyExtAuthzGrpc ?? {};
    grpc.failOpn = grpc.failOpen;
    delete grpc.failOpen;
    expect(check(config)).toEqual([expect.stringMatching(/unknown field "failOpn"/)]);
  });

  test('a port given by name is rejected: the field is the Service port number', () => {
    const config = load<Operator>('extension-provider.yaml');
    Object.assign(config.spec.meshConfig.extensionProviders[0]?.envoyExtAuthzGrpc ?? {}, { port: 'grpc' });
    expect(check(config)).toEqual([expect.stringMatching(/invalid value for uint32 field port/)]);
  });

  test('fields the hand-written schema lacked are known (clearRouteCache, trustDomainAliases)', () => {
    const config = load<Operator>('extension-provider.yaml');
    Object.assign(config.spec.meshConfig.extensionProviders[0]?.envoyExtAuthzGrpc ?? {}, {
      clearRouteCache: true,
    });
    Object.assign(config.spec.meshConfig, { trustDomainAliases: ['old.example.com'] });
    expect(check(config)).toEqual([]);
  });
});

describe('deploy/istio/authorization-policy.yaml', () => {
  test('delegates to the provider the mesh config registers, leaving the health check out', () => {
    const { spec } = load<Policy>('authorization-policy.yaml');
    expect(spec.action).toBe('CUSTOM');
    expect(spec.provider?.name).toBe(provider()?.name);
    expect(spec.rules?.[0]?.to?.[0]?.operation.notPaths).toContain('/healthz');
  });

  test('a misspelled field is rejected', () => {
    const config = load<Policy>('authorization-policy.yaml');
    config.spec.provder = config.spec.provider;
    delete config.spec.provider;
    expect(check(config)).toEqual([expect.stringMatching(/unknown field "provder"/)]);
  });

  test('an action Istio does not have is rejected', () => {
    const config = load<Policy>('authorization-policy.yaml');
    config.spec.action = 'EXTERNAL';
    expect(check(config)).toEqual([expect.stringMatching(/invalid value for enum.*EXTERNAL/)]);
  });

  test('fields the hand-written schema lacked are known (targetRefs, serviceAccounts, trustDomains)', () => {
    const config = load<Policy>('authorization-policy.yaml');
    delete config.spec.selector;
    config.spec.targetRefs = [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'api' }];
    config.spec.rules = [
      { from: [{ source: { serviceAccounts: ['payments/agent'], trustDomains: ['cluster.local'] } }] },
    ];
    expect(check(config)).toEqual([]);
  });
});
