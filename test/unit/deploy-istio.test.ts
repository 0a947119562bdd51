/**
 * deploy/istio/*.yaml against the upstream API's field names and types (istio/api:
 * security/v1beta1/authorization_policy.proto, mesh/v1alpha1/config.proto ExtensionProvider and
 * EnvoyExternalAuthorizationGrpcProvider), as strict schemas of the fields these examples use: an unknown
 * or misspelled field fails, as `kubectl apply` (strict field validation) or istiod would refuse it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

const DEPLOY = path.join(__dirname, '../../deploy/istio');

const strings = z.array(z.string()).optional();
const duration = z.string().regex(/^\d+(\.\d{1,9})?s$/, 'a duration like "3s"');
const metadata = z.object({ name: z.string().min(1), namespace: z.string().min(1).optional() }).strict();

// MeshConfig.ExtensionProvider with its envoyExtAuthzGrpc member (JSON names, as the mesh config is read).
const grpcProvider = z
  .object({
    service: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    timeout: duration.optional(),
    failOpen: z.boolean().optional(),
    statusOnError: z
      .string()
      .regex(/^[1-5]\d\d$/, 'an HTTP status as a string')
      .optional(),
    includeRequestBodyInCheck: z
      .object({
        maxRequestBytes: z.number().int().min(0).optional(),
        allowPartialMessage: z.boolean().optional(),
        packAsBytes: z.boolean().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
const extensionProvider = z.object({ name: z.string().min(1), envoyExtAuthzGrpc: grpcProvider }).strict();

const istioOperator = z
  .object({
    apiVersion: z.literal('install.istio.io/v1alpha1'),
    kind: z.literal('IstioOperator'),
    metadata,
    spec: z
      .object({
        meshConfig: z.object({ extensionProviders: z.array(extensionProvider).min(1) }).strict(),
      })
      .strict(),
  })
  .strict();

// AuthorizationPolicy (security.istio.io) spec.
const operation = z
  .object({
    hosts: strings,
    notHosts: strings,
    ports: strings,
    notPorts: strings,
    methods: strings,
    notMethods: strings,
    paths: strings,
    notPaths: strings,
  })
  .strict();
const source = z
  .object({
    principals: strings,
    notPrincipals: strings,
    requestPrincipals: strings,
    notRequestPrincipals: strings,
    namespaces: strings,
    notNamespaces: strings,
    ipBlocks: strings,
    notIpBlocks: strings,
    remoteIpBlocks: strings,
    notRemoteIpBlocks: strings,
  })
  .strict();
const condition = z.object({ key: z.string().min(1), values: strings, notValues: strings }).strict();
const rule = z
  .object({
    from: z.array(z.object({ source }).strict()).optional(),
    to: z.array(z.object({ operation }).strict()).optional(),
    when: z.array(condition).optional(),
  })
  .strict();

const authorizationPolicy = z
  .object({
    apiVersion: z.enum(['security.istio.io/v1', 'security.istio.io/v1beta1']),
    kind: z.literal('AuthorizationPolicy'),
    metadata,
    spec: z
      .object({
        selector: z
          .object({ matchLabels: z.record(z.string()) })
          .strict()
          .optional(),
        action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']).optional(),
        provider: z
          .object({ name: z.string().min(1) })
          .strict()
          .optional(),
        rules: z.array(rule).optional(),
      })
      .strict()
      .refine((s) => (s.action === 'CUSTOM') === (s.provider !== undefined), {
        message: 'provider is set exactly when action is CUSTOM',
      }),
  })
  .strict();

function load(file: string): unknown {
  return parse(readFileSync(path.join(DEPLOY, file), 'utf8'));
}

/** Each problem as "path: message", so a failure names the field. */
function problems(schema: z.ZodTypeAny, value: unknown): string[] {
  const result = schema.safeParse(value);
  if (result.success) return [];
  return result.error.issues.map((i) => {
    const keys = i.code === 'unrecognized_keys' ? `.${i.keys.join(',')}` : '';
    return `${i.path.join('.')}${keys}: ${i.message}`;
  });
}

const provider = () =>
  istioOperator.parse(load('extension-provider.yaml')).spec.meshConfig.extensionProviders[0];
const policy = () => authorizationPolicy.parse(load('authorization-policy.yaml'));

describe('deploy/istio/extension-provider.yaml', () => {
  test('is a well-formed IstioOperator with a gRPC ext_authz provider', () => {
    expect(problems(istioOperator, load('extension-provider.yaml'))).toEqual([]);
  });

  test('fails closed with 503, gives invoice creation time, and targets Plannt’s gRPC port', () => {
    expect(provider()?.envoyExtAuthzGrpc).toMatchObject({
      port: 9001,
      timeout: '3s',
      failOpen: false,
      statusOnError: '503',
    });
  });

  test('a misspelled field is rejected', () => {
    const config = load('extension-provider.yaml') as {
      spec: { meshConfig: { extensionProviders: Record<string, Record<string, unknown>>[] } };
    };
    const grpc = config.spec.meshConfig.extensionProviders[0]?.envoyExtAuthzGrpc ?? {};
    grpc.failOpn = grpc.failOpen;
    delete grpc.failOpen;
    expect(problems(istioOperator, config)).toEqual([
      expect.stringMatching(/envoyExtAuthzGrpc\.failOpn: Unrecognized key/),
    ]);
  });

  test('a port given by name is rejected: the field is the Service port number', () => {
    const config = load('extension-provider.yaml') as {
      spec: { meshConfig: { extensionProviders: { envoyExtAuthzGrpc: Record<string, unknown> }[] } };
    };
    Object.assign(config.spec.meshConfig.extensionProviders[0]?.envoyExtAuthzGrpc ?? {}, { port: 'grpc' });
    expect(problems(istioOperator, config)).toEqual([expect.stringMatching(/envoyExtAuthzGrpc\.port/)]);
  });
});

describe('deploy/istio/authorization-policy.yaml', () => {
  test('is a well-formed AuthorizationPolicy', () => {
    expect(problems(authorizationPolicy, load('authorization-policy.yaml'))).toEqual([]);
  });

  test('delegates to the provider the mesh config registers, leaving the health check out', () => {
    const { spec } = policy();
    expect(spec.action).toBe('CUSTOM');
    expect(spec.provider?.name).toBe(provider()?.name);
    expect(spec.rules?.[0]?.to?.[0]?.operation.notPaths).toContain('/healthz');
  });

  test('a misspelled field is rejected', () => {
    const config = load('authorization-policy.yaml') as { spec: Record<string, unknown> };
    config.spec.provder = config.spec.provider;
    delete config.spec.provider;
    expect(problems(authorizationPolicy, config)).toContainEqual(
      expect.stringMatching(/^spec\.provder: Unrecognized key/),
    );
  });

  test('an action Istio does not have is rejected', () => {
    const config = load('authorization-policy.yaml') as { spec: Record<string, unknown> };
    config.spec.action = 'EXTERNAL';
    expect(problems(authorizationPolicy, config)).toContainEqual(expect.stringMatching(/^spec\.action:/));
  });
});
