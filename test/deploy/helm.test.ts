/**
 * The Helm chart (deploy/helm/plannt), checked by the real tools: `helm lint --strict`, `helm template`
 * with the default values, every ci/*-values.yaml and a set of odd values, and every rendered object
 * validated by kubecheck: strict decoding into the Go API types, then the API server's own validation
 * functions from k8s.io/kubernetes v1.31 (ValidateDeployment, …), as `kubectl apply` would meet them.
 * values.schema.json and the chart's cross-field rules must refuse bad values, and the configuration the
 * chart renders must be one Plannt itself accepts.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Deployment } from 'kubernetes-models/apps/v1';
import type { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { ConfigMap, IContainer, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config';
import {
  CHART,
  ENSURE_TOOLS_TIMEOUT_MS,
  ensureDeployTools,
  helm,
  KUBE_VERSION,
  kubecheck,
  REPO,
  removeHelmHome,
} from '../support/deploy-tools';

const FULL_VALUES = path.join(CHART, 'ci/full-values.yaml');
const SENTINEL_VALUES = path.join(CHART, 'ci/sentinel-values.yaml');
/**
 * The default values plus the one thing `helm template` cannot do without: a root key. (Without one the
 * chart refuses to render away from a cluster; see "the root key".)
 */
const ROOT_KEY = '7c1e9a4fd2b83650e1ab92c47f0d3e68a5b1c9d02f7e4a83b6c15d9e0f2a7b48';
const WITH_KEY = ['--set-json', `rootKeys.keys=[{"id":1,"key":"${ROOT_KEY}"}]`];

type Raw = Record<string, unknown>;

interface K8sObject extends Raw {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Raw };
}

interface Rendered {
  text: string;
  objects: K8sObject[];
  get<T>(kind: string, name?: string): T;
}

function render(args: string[] = [], release = 'plannt', namespace = 'payments'): Rendered {
  const result = helm([
    'template',
    release,
    CHART,
    '--namespace',
    namespace,
    '--kube-version',
    KUBE_VERSION,
    ...args,
  ]);
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  const objects = parseAllDocuments(result.stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
  return {
    text: result.stdout,
    objects,
    get<T>(kind: string, name?: string): T {
      const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
      if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} rendered`);
      return found as unknown as T;
    },
  };
}

/**
 * kubecheck on the whole stream: every built-in object through the API server's validation, the
 * Prometheus-operator objects (ServiceMonitor, PrometheusRule) through strict decoding into its Go types.
 */
function expectValidObjects(rendered: Rendered): void {
  const checked = kubecheck(rendered.text);
  expect(checked.stderr).toBe('');
  expect(checked.stdout).toContain(`${rendered.objects.length} objects checked, 0 invalid`);
  expect(checked.status).toBe(0);
}

const secretValue = (secret: Secret, key: string): string =>
  Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');

function plannt(deployment: Deployment): IContainer {
  const container = deployment.spec?.template.spec?.containers.find((c) => c.name === 'plannt');
  if (!container) throw new Error('no plannt container');
  return container;
}

/** The environment the container gets: literal values and Secret references resolved from `secrets`. */
/**
 * Plannt's environment as the pod gives it, with the root keys file (a mounted Secret) read the way Plannt
 * reads it, into PLANNT_ROOT_KEYS.
 */
function containerEnv(deployment: Deployment, secrets: Secret[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of plannt(deployment).env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const secret = secrets.find((s) => s.metadata?.name === ref.name);
      if (secret) env[e.name] = secretValue(secret, ref.key);
    } else {
      env[e.name] = e.value ?? '';
    }
  }
  const keysFile = env.PLANNT_ROOT_KEYS_FILE;
  const source = keysFile === undefined ? undefined : mountedFiles(deployment).get(keysFile);
  if (keysFile !== undefined) {
    const [, name = '', key = ''] = /^secret:([^/]+)\/(.+)$/.exec(source ?? '') ?? [];
    const secret = secrets.find((s) => s.metadata?.name === name);
    if (!source?.startsWith('secret:'))
      throw new Error(`PLANNT_ROOT_KEYS_FILE ${keysFile} is not mounted from a Secret`);
    delete env.PLANNT_ROOT_KEYS_FILE;
    // An existingSecret is not rendered: the caller supplies its keys.
    if (secret) env.PLANNT_ROOT_KEYS = secretValue(secret, key);
  }
  return env;
}

/** Where each mounted file of the container comes from: `/mount/path/file` → `secret|configMap:name/key`. */
function mountedFiles(deployment: Deployment): Map<string, string> {
  const files = new Map<string, string>();
  const spec = deployment.spec?.template.spec;
  for (const mount of plannt(deployment).volumeMounts ?? []) {
    const volume = spec?.volumes?.find((v) => v.name === mount.name);
    const source = volume?.secret
      ? { kind: 'secret', name: volume.secret.secretName ?? '', items: volume.secret.items }
      : volume?.configMap
        ? { kind: 'configMap', name: volume.configMap.name ?? '', items: volume.configMap.items }
        : undefined;
    if (!source) continue;
    for (const item of source.items ?? []) {
      files.set(`${mount.mountPath}/${item.path}`, `${source.kind}:${source.name}/${item.key}`);
    }
    if (!source.items) files.set(`${mount.mountPath}/*`, `${source.kind}:${source.name}`);
  }
  return files;
}

beforeAll(() => ensureDeployTools(), ENSURE_TOOLS_TIMEOUT_MS);
afterAll(() => removeHelmHome());

describe('helm lint --strict', () => {
  it('passes with the default values and a root key', () => {
    const result = helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, ...WITH_KEY]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.status).toBe(0);
  });

  it.each(readdirSync(path.join(CHART, 'ci')))('passes with ci/%s', (file) => {
    const result = helm([
      'lint',
      '--strict',
      CHART,
      '-f',
      path.join(CHART, 'ci', file),
      '--kube-version',
      KUBE_VERSION,
    ]);
    expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.status).toBe(0);
  });
});

describe('the chart with its default values (and a root key)', () => {
  let rendered: Rendered;
  beforeAll(() => {
    rendered = render(WITH_KEY);
  });

  it('renders a Deployment, Service, ConfigMap, Secret, ServiceAccount, HPA, PDB and the dashboard', () => {
    expect(rendered.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ConfigMap/plannt',
      'ConfigMap/plannt-dashboard',
      'Deployment/plannt',
      'HorizontalPodAutoscaler/plannt',
      'PodDisruptionBudget/plannt',
      'Secret/plannt',
      'Service/plannt',
      'ServiceAccount/plannt',
    ]);
  });

  it('renders only objects valid against the Kubernetes schemas', () => {
    expectValidObjects(rendered);
  });

  it('runs Plannt non-root on a read-only root filesystem with no capabilities and seccomp RuntimeDefault', () => {
    const deployment = rendered.get<Deployment>('Deployment');
    const pod = deployment.spec?.template.spec;
    expect(pod?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod?.automountServiceAccountToken).toBe(false);
    const container = plannt(deployment);
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.resources?.requests).toEqual({ cpu: '100m', memory: '160Mi' });
    expect(container.resources?.limits).toEqual({ cpu: '1', memory: '512Mi' });
    expect(container.args).toEqual(['serve', '--config', '/etc/plannt/plannt.yaml']);
  });

  it('probes /healthz for liveness and /readyz for readiness, and sleeps before SIGTERM to drain', () => {
    const deployment = rendered.get<Deployment>('Deployment');
    const container = plannt(deployment);
    expect(container.livenessProbe).toEqual({
      httpGet: { path: '/healthz', port: 'metrics' },
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
    expect(container.readinessProbe).toEqual({
      httpGet: { path: '/readyz', port: 'metrics' },
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 2,
    });
    expect(container.lifecycle?.preStop?.sleep?.seconds).toBe(5);
    // Drain: the preStop sleep, Plannt's drain_seconds and shutdown_grace_ms fit in the grace period.
    expect(deployment.spec?.template.spec?.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(5 + 5 + 10);
  });

  it('spreads replicas over zones and nodes, selecting its own pods', () => {
    const deployment = rendered.get<Deployment>('Deployment');
    const constraints = deployment.spec?.template.spec?.topologySpreadConstraints ?? [];
    expect(constraints.map((c) => c.topologyKey)).toEqual([
      'topology.kubernetes.io/zone',
      'kubernetes.io/hostname',
    ]);
    for (const c of constraints)
      expect(c.labelSelector?.matchLabels).toEqual(deployment.spec?.selector.matchLabels);
  });

  it('names the ports grpc (for Istio), http and metrics on the Service and the container alike', () => {
    const service = rendered.get<Service>('Service');
    expect(service.spec?.ports?.map((p) => [p.name, p.port, p.targetPort, p.appProtocol])).toEqual([
      ['grpc', 9001, 'grpc', 'grpc'],
      ['http', 9002, 'http', 'http'],
      ['metrics', 9090, 'metrics', 'http'],
    ]);
    const container = plannt(rendered.get<Deployment>('Deployment'));
    expect(container.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['grpc', 9001],
      ['http', 9002],
      ['metrics', 9090],
    ]);
    expect(service.spec?.selector).toEqual(rendered.get<Deployment>('Deployment').spec?.selector.matchLabels);
  });

  it('leaves the replica count to the HPA and keeps at most one pod down in a disruption', () => {
    expect(rendered.get<Deployment>('Deployment').spec?.replicas).toBeUndefined();
    const hpa = rendered.get<HorizontalPodAutoscaler>('HorizontalPodAutoscaler');
    expect(hpa.spec).toMatchObject({
      minReplicas: 2,
      maxReplicas: 10,
      scaleTargetRef: { kind: 'Deployment' },
    });
    expect(rendered.get<PodDisruptionBudget>('PodDisruptionBudget').spec?.maxUnavailable).toBe(1);
  });

  it('stores the root key it is given in its Secret and mounts it as the file PLANNT_ROOT_KEYS_FILE names', () => {
    const mounted = mountedFiles(rendered.get<Deployment>('Deployment'));
    expect(mounted.get('/etc/plannt/keys/root-keys')).toBe('secret:plannt/root-keys');
    const secret = rendered.get<Secret>('Secret');
    expect(secretValue(secret, 'root-keys')).toBe(`1:${ROOT_KEY}`);
    const env = containerEnv(rendered.get<Deployment>('Deployment'), [secret]);
    expect(env.PLANNT_ROOT_KEYS).toBe(`1:${ROOT_KEY}`);
  });

  it("renders Plannt's own configuration format, complete once LND and Redis are given", () => {
    const configMap = rendered.get<ConfigMap>('ConfigMap', 'plannt');
    const raw = parseYaml(configMap.data?.['plannt.yaml'] ?? '') as Raw;
    const env = containerEnv(rendered.get<Deployment>('Deployment'), [rendered.get<Secret>('Secret')]);
    const config = parseConfig(raw, {
      ...env,
      PLANNT_LND_SOCKET: 'lnd:10009',
      PLANNT_LND_MACAROON_BASE64: 'AgEDbG5k',
      PLANNT_REDIS_URL: 'redis://redis:6379',
    });
    expect(config.listen).toEqual({ grpc: '0.0.0.0:9001', http: '0.0.0.0:9002', admin: '0.0.0.0:9090' });
    expect(config.backend.kind).toBe('lnd');
    expect(config.spent_set).toMatchObject({ kind: 'redis', on_error: 'fail_closed' });
    // Without them Plannt refuses to start, naming the field.
    expect(() => parseConfig(raw, env)).toThrow(/backend/);
  });
});

describe('the chart with every feature switched on', () => {
  let rendered: Rendered;
  let secret: Secret;
  let deployment: Deployment;
  beforeAll(() => {
    rendered = render(['-f', FULL_VALUES]);
    secret = rendered.get<Secret>('Secret');
    deployment = rendered.get<Deployment>('Deployment');
  });

  it('adds the ServiceMonitor, PrometheusRule and NetworkPolicy', () => {
    expect(rendered.objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'PrometheusRule',
      'Secret',
      'Service',
      'ServiceAccount',
      'ServiceMonitor',
    ]);
  });

  it('renders only objects valid against the Kubernetes and Prometheus-operator schemas', () => {
    expectValidObjects(rendered);
  });

  it('renders a configuration Plannt accepts, with the root keys, LND and Redis it was given', () => {
    const raw = parseYaml(rendered.get<ConfigMap>('ConfigMap', 'plannt').data?.['plannt.yaml'] ?? '') as Raw;
    const env = containerEnv(deployment, [secret]);
    const config = parseConfig(raw, env);
    expect(config.root_keys.map((k) => k.id)).toEqual([2, 1]);
    expect(config.current_key_id).toBe(2);
    expect(config.spent_set.redis?.url).toBe('redis://:s3cret@redis-master.redis.svc.cluster.local:6379/0');
    expect(config.spent_set.redis?.key_prefix).toBe('plannt:prod:spent:');
    expect(config.backend.lnd?.socket).toBe('lnd.lightning.svc.cluster.local:10009');
    expect(config.routes.map((r) => r.id)).toEqual(['generate', 'embeddings', 'status']);
    expect(config.routes.map((r) => [r.uses, r.max_requests_per_second])).toEqual([
      [100, undefined],
      ['unlimited', 20],
      [undefined, undefined],
    ]);
    expect(config.unmatched).toEqual({ action: 'price', service: 'misc', price_sats: 1 });
    expect(config.challenge_limits.per_client_per_second).toBe(5);
    // extraEnv's PLANNT_LOG_LEVEL wins over config.log_level, as Plannt's environment overrides do.
    expect(raw.log_level).toBe('warn');
    expect(config.log_level).toBe('info');
  });

  it('mounts every file the configuration names from the Secret that holds it', () => {
    const raw = parseYaml(rendered.get<ConfigMap>('ConfigMap', 'plannt').data?.['plannt.yaml'] ?? '') as Raw;
    const config = parseConfig(raw, containerEnv(deployment, [secret]));
    const files = mountedFiles(deployment);
    expect(files.get('/etc/plannt/plannt.yaml')).toBe('configMap:plannt/plannt.yaml');
    expect(files.get(config.backend.lnd?.cert_file ?? '')).toBe('secret:plannt/tls.cert');
    expect(files.get(config.backend.lnd?.macaroon_file ?? '')).toBe('secret:plannt/invoice.macaroon');
    expect(config.tls).toEqual({
      cert_file: '/etc/plannt/tls/tls.crt',
      key_file: '/etc/plannt/tls/tls.key',
      client_ca_file: '/etc/plannt/tls/ca.crt',
    });
    expect(files.get('/etc/plannt/tls/*')).toBe('secret:plannt-grpc-tls');
    expect(secret.data?.['invoice.macaroon']).toBe(
      'AgEDbG5kAlgDChBwbGFubnQtdGVzdC1vbmx5EgEwGhYKB2ludm9pY2VzEgRyZWFkEgV3cml0ZQ==',
    );
    expect(secretValue(secret, 'tls.cert')).toContain('-----BEGIN CERTIFICATE-----');
  });

  it('scrapes the Service port named metrics', () => {
    const monitor = rendered.get<{ spec: { endpoints: Raw[]; selector: Raw } }>('ServiceMonitor');
    expect(monitor.spec.endpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '10s', scrapeTimeout: '5s' },
    ]);
    expect(monitor.spec.selector).toEqual({ matchLabels: rendered.get<Service>('Service').spec?.selector });
    expect(rendered.get<K8sObject>('ServiceMonitor').metadata.labels?.release).toBe('kube-prometheus-stack');
  });

  it('carries deploy/prometheus/plannt-rules.yaml unchanged as the PrometheusRule', () => {
    const rule = rendered.get<{ spec: Raw }>('PrometheusRule');
    const rules = parseYaml(
      readFileSync(path.join(REPO, 'deploy/prometheus/plannt-rules.yaml'), 'utf8'),
    ) as Raw;
    expect(rule.spec).toEqual(rules);
  });

  it('carries deploy/grafana/plannt-dashboard.json unchanged in a ConfigMap the Grafana sidecar picks up', () => {
    const dashboard = rendered.get<ConfigMap>('ConfigMap', 'plannt-dashboard');
    expect(dashboard.metadata?.labels?.grafana_dashboard).toBe('1');
    expect(dashboard.metadata?.namespace).toBe('monitoring');
    expect(dashboard.metadata?.annotations).toEqual({ grafana_folder: 'Payments' });
    const json = readFileSync(path.join(REPO, 'deploy/grafana/plannt-dashboard.json'), 'utf8');
    expect(`${dashboard.data?.['plannt-dashboard.json']}\n`).toBe(json);
  });

  it('lets in only the gateways (grpc, http) and Prometheus (metrics), and out only DNS, LND and Redis', () => {
    const policy = rendered.get<NetworkPolicy>('NetworkPolicy');
    expect(policy.spec?.podSelector.matchLabels).toEqual(deployment.spec?.selector.matchLabels);
    expect(policy.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    const ingress = policy.spec?.ingress ?? [];
    expect(ingress.map((r) => r.ports?.map((p) => p.port))).toEqual([['grpc', 'http'], ['metrics']]);
    expect(ingress[0]?.from?.[0]?.podSelector?.matchLabels).toEqual({ istio: 'ingressgateway' });
    expect(ingress[1]?.from?.[0]?.podSelector?.matchLabels).toEqual({
      'app.kubernetes.io/name': 'prometheus',
    });
    const egress = policy.spec?.egress ?? [];
    expect(egress.map((r) => r.ports?.map((p) => p.port))).toEqual([[53, 53], [10009], [6379, 26379]]);
    expect(egress[1]?.to?.[1]?.ipBlock?.cidr).toBe('192.0.2.10/32');
  });

  it('pins the image by digest and sets the replica floor on the HPA', () => {
    expect(plannt(deployment).image).toBe(
      'registry.example.com/payments/plannt@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    );
    expect(rendered.get<HorizontalPodAutoscaler>('HorizontalPodAutoscaler').spec?.minReplicas).toBe(3);
  });

  it('keeps readiness on GET /readyz, since gRPC TLS is on and the kubelet probes gRPC in plaintext', () => {
    expect(plannt(deployment).readinessProbe).toEqual({
      httpGet: { path: '/readyz', port: 'metrics' },
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 2,
    });
  });

  it('rolls the pods when a restart-only setting changes, not for a price change (reloaded live)', () => {
    const checksum = (args: string[]) =>
      render(['-f', FULL_VALUES, ...args]).get<Deployment>('Deployment').spec?.template.metadata
        ?.annotations?.['checksum/config'];
    const before = deployment.spec?.template.metadata?.annotations?.['checksum/config'];
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(['--set', 'config.retry_after_seconds=7'])).not.toBe(before);
    expect(checksum(['--set', 'config.defaults.token_lifetime_seconds=7200'])).toBe(before);
  });
});

describe('one source of truth for the rules and the dashboard', () => {
  it.each([
    ['deploy/prometheus/plannt-rules.yaml', 'files/plannt-rules.yaml'],
    ['deploy/grafana/plannt-dashboard.json', 'files/plannt-dashboard.json'],
  ])('the chart carries a byte-for-byte copy of %s (cp it to deploy/helm/plannt/%s)', (canonical, copy) => {
    expect(readFileSync(path.join(CHART, copy), 'utf8')).toBe(
      readFileSync(path.join(REPO, canonical), 'utf8'),
    );
  });
});

/** helm template with `values` (JSON is YAML) on top of the chart's defaults. */
function renderWith(values: Raw): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-values-'));
  try {
    const file = path.join(dir, 'values.yaml');
    writeFileSync(file, JSON.stringify(values));
    return helm(['template', 'plannt', CHART, '-n', 'payments', '--kube-version', KUBE_VERSION, '-f', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const KEYS = { keys: [{ id: 1, key: ROOT_KEY }] };

describe('the chart with Redis Sentinel, a password and the gRPC readiness probe (ci/sentinel-values.yaml)', () => {
  let rendered: Rendered;
  let deployment: Deployment;
  beforeAll(() => {
    rendered = render(['-f', SENTINEL_VALUES]);
    deployment = rendered.get<Deployment>('Deployment');
  });

  it('renders only objects the API server accepts', () => {
    expectValidObjects(rendered);
  });

  it('probes readiness over gRPC health on the grpc port, with that one handler only', () => {
    expect(plannt(deployment).readinessProbe).toEqual({
      grpc: { port: 9001 },
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
  });

  it('keeps the Redis password out of the ConfigMap and gives it to Plannt from the Secret', () => {
    const configText = rendered.get<ConfigMap>('ConfigMap', 'plannt').data?.['plannt.yaml'] ?? '';
    expect(configText).not.toContain('s3ntinel-pa55');
    expect(configText).not.toContain('password');
    const env = containerEnv(deployment, [rendered.get<Secret>('Secret')]);
    expect(env.PLANNT_REDIS_PASSWORD).toBe('s3ntinel-pa55');
    // No URL next to the Sentinel nodes, which Plannt would refuse.
    expect(env.PLANNT_REDIS_URL).toBeUndefined();
    const config = parseConfig(parseYaml(configText), { ...env, PLANNT_ROOT_KEYS: `1:${ROOT_KEY}` });
    expect(config.spent_set.redis).toMatchObject({ master_name: 'mymaster', password: 's3ntinel-pa55' });
  });

  it('takes the password from an existing Secret when told its key', () => {
    const result = renderWith({
      rootKeys: { existingSecret: 'keys' },
      config: { spent_set: { kind: 'redis', redis: { cluster_nodes: [{ host: 'r', port: 6379 }] } } },
      redis: { existingSecret: 'redis-creds', existingSecretPasswordKey: 'password' },
    });
    expect(result.stderr).toBe('');
    const out = parseAllDocuments(result.stdout).map((d) => d.toJS() as K8sObject);
    const env = plannt(out.find((o) => o.kind === 'Deployment') as unknown as Deployment).env ?? [];
    expect(env.find((e) => e.name === 'PLANNT_REDIS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({
      name: 'redis-creds',
      key: 'password',
    });
    expect(env.find((e) => e.name === 'PLANNT_REDIS_URL')).toBeUndefined();
  });

  it('sets the PodDisruptionBudget by minAvailable alone', () => {
    expect(rendered.get<PodDisruptionBudget>('PodDisruptionBudget').spec).toMatchObject({ minAvailable: 2 });
    expect(rendered.get<PodDisruptionBudget>('PodDisruptionBudget').spec?.maxUnavailable).toBeUndefined();
  });
});

describe('odd but valid values render objects the API server accepts', () => {
  it.each<[string, Raw]>([
    [
      'one pod, no HPA, no PDB, the in-memory spent-set',
      {
        rootKeys: KEYS,
        replicaCount: 1,
        autoscaling: { enabled: false },
        podDisruptionBudget: { enabled: false },
        config: { spent_set: { kind: 'memory' } },
      },
    ],
    [
      'a 63-character name, other ports, a NodePort Service',
      {
        rootKeys: KEYS,
        fullnameOverride: `p${'x'.repeat(62)}`,
        ports: { grpc: 50051, http: 8080, metrics: 9100 },
        service: { type: 'NodePort' },
      },
    ],
    [
      'a percentage PDB, gRPC readiness without TLS, a NetworkPolicy with ipBlocks, Cluster Redis',
      {
        rootKeys: { existingSecret: 'keys', existingSecretKey: 'k' },
        podDisruptionBudget: { maxUnavailable: '50%' },
        readinessProbe: { type: 'grpc', initialDelaySeconds: 2 },
        config: { spent_set: { kind: 'redis', redis: { cluster_nodes: [{ host: 'r', port: 6379 }] } } },
        redis: { password: 'p' },
        networkPolicy: {
          enabled: true,
          lnd: { to: [{ ipBlock: { cidr: '198.51.100.7/32' } }] },
          redis: { to: [{ ipBlock: { cidr: '198.51.100.0/24' } }] },
        },
      },
    ],
    [
      'a long grace period, no spread constraints, no dashboard',
      {
        rootKeys: KEYS,
        preStopSleepSeconds: 0,
        terminationGracePeriodSeconds: 600,
        config: { shutdown_grace_ms: 300000 },
        topologySpreadConstraints: [],
        dashboard: { enabled: false },
      },
    ],
  ])('%s', (_name, values) => {
    const result = renderWith(values);
    expect(result.stderr).toBe('');
    const checked = kubecheck(result.stdout);
    expect(checked.stderr).toBe('');
    expect(checked.stdout).toMatch(/\d+ objects checked, 0 invalid/);
  });
});

describe('the chart refuses what a schema cannot compare', () => {
  it.each<[string, Raw, RegExp]>([
    [
      'a gRPC readiness probe on a TLS port (the kubelet probes in plaintext)',
      { rootKeys: KEYS, readinessProbe: { type: 'grpc' }, grpcTls: { existingSecret: 'tls' } },
      /readinessProbe.type=grpc with grpcTls.existingSecret: the kubelet probes gRPC in plaintext/,
    ],
    [
      'minReplicas above maxReplicas',
      { rootKeys: KEYS, autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 3 } },
      /autoscaling.minReplicas \(5\) is greater than autoscaling.maxReplicas \(3\)/,
    ],
    [
      'a grace period shorter than the preStop sleep plus the drain',
      {
        rootKeys: KEYS,
        preStopSleepSeconds: 10,
        terminationGracePeriodSeconds: 15,
        config: { shutdown_grace_ms: 10000 },
      },
      /terminationGracePeriodSeconds \(15\) is shorter than .* Set it to at least 25/,
    ],
    [
      'a PDB minAvailable that no eviction could ever satisfy',
      { rootKeys: KEYS, podDisruptionBudget: { minAvailable: 2 }, autoscaling: { minReplicas: 2 } },
      /minAvailable \(2\) is not below the replica floor \(2\)/,
    ],
    [
      'no root key where it cannot see the cluster (helm template, Argo CD): a new key every render',
      {},
      /no root key: set rootKeys.existingSecret .* invalidate every token sold/,
    ],
  ])('refuses %s', (_name, values, mentions) => {
    const result = renderWith(values);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(mentions);
  });
});

describe('values.schema.json refuses bad values at install', () => {
  const SCHEMA_ERROR = "values don't meet the specifications of the schema";

  it.each<[string, Raw, RegExp]>([
    ['zero replicas', { replicaCount: 0 }, /replicaCount/],
    ['a misspelt top-level value', { replicas: 2 }, /replicas/],
    ['the dev invoice backend', { config: { backend: { kind: 'dev' } } }, /kind/],
    ['a field the chart owns', { config: { listen: { grpc: '0.0.0.0:1' } } }, /listen/],
    [
      'the in-memory spent-set on more than one pod',
      { config: { spent_set: { kind: 'memory' } }, replicaCount: 2, autoscaling: { enabled: false } },
      /replicaCount/,
    ],
    ['a negative price', { config: { routes: [{ id: 'a', service: 'svc', price_sats: -1 }] } }, /price_sats/],
    [
      'a path without a leading slash',
      { config: { routes: [{ id: 'a', service: 'svc', price_sats: 1, path: { prefix: 'v1' } }] } },
      /path/,
    ],
    [
      'an upper-case service name',
      { config: { routes: [{ id: 'a', service: 'Svc', price_sats: 1 }] } },
      /service/,
    ],
    [
      'a bundle of zero uses',
      { config: { routes: [{ id: 'a', service: 'svc', price_sats: 1, uses: 0 }] } },
      /uses/,
    ],
    [
      'uses that are neither a count nor unlimited',
      { config: { routes: [{ id: 'a', service: 'svc', price_sats: 1, uses: 'forever' }] } },
      /uses/,
    ],
    [
      'a rate bound of zero',
      {
        config: {
          routes: [{ id: 'a', service: 'svc', price_sats: 1, uses: 'unlimited', max_requests_per_second: 0 }],
        },
      },
      /max_requests_per_second/,
    ],
    [
      'unmatched pricing without a price',
      { config: { unmatched: { action: 'price', service: 'x' } } },
      /price_sats/,
    ],
    ['LND without its macaroon', { lnd: { socket: 'lnd:10009' } }, /macaroon|existingSecret/],
    ['LND credentials without a socket', { lnd: { macaroonBase64: 'AgEDbG5k' } }, /socket/],
    ['a root key shorter than 32 bytes', { rootKeys: { keys: [{ id: 1, key: 'abcd' }] } }, /key/],
    ['a non-URL Redis', { redis: { url: 'redis-master:6379' } }, /url/],
    ['a port out of range', { ports: { grpc: 70000, http: 9002, metrics: 9090 } }, /grpc/],
    ['an unknown pull policy', { image: { repository: 'plannt', pullPolicy: 'Sometimes' } }, /pullPolicy/],
    ['a NetworkPolicy that cannot reach LND', { networkPolicy: { enabled: true } }, /lnd|to/],
    [
      'a probe handler in values (it would be merged into the default one)',
      { readinessProbe: { type: 'http', grpc: { port: 9001 } } },
      /grpc/,
    ],
    ['a liveness handler in values', { livenessProbe: { exec: { command: ['true'] } } }, /exec/],
    ['an unknown readiness probe type', { readinessProbe: { type: 'tcp' } }, /type/],
    [
      'the Redis password in the ConfigMap',
      { config: { spent_set: { redis: { password: 'x' } } } },
      /password/,
    ],
    ['minAvailable of zero', { podDisruptionBudget: { minAvailable: 0 } }, /minAvailable/],
    [
      'overriding the root keys through extraEnv',
      { extraEnv: [{ name: 'PLANNT_ROOT_KEYS', value: '1:00' }] },
      /name/,
    ],
  ])('refuses %s', (_name, values, mentions) => {
    const result = renderWith(values);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(SCHEMA_ERROR);
    expect(result.stderr).toMatch(mentions);
  });

  it('accepts `global`, which Helm passes to Plannt as a subchart', () => {
    const result = renderWith({
      rootKeys: KEYS,
      global: { imageRegistry: 'registry.example.com', storageClass: 'x' },
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it("accepts every field of plannt.example.yaml the chart does not own (it keeps up with Plannt's format)", () => {
    const example = parseYaml(readFileSync(path.join(REPO, 'plannt.example.yaml'), 'utf8')) as Raw;
    // Owned by the chart: listen (ports), keys (rootKeys), LND credentials (lnd), tls (grpcTls), Redis URL.
    const { listen: _l, root_keys: _k, current_key_id: _c, tls: _t, ...config } = example;
    const backend = { ...(config.backend as Raw) };
    delete backend.lnd;
    const spentSet = structuredClone(config.spent_set) as { redis: Raw };
    delete spentSet.redis.url;
    const values = { rootKeys: KEYS, config: { ...config, backend, spent_set: spentSet } };
    const result = renderWith(values);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});

describe('NOTES.txt', () => {
  let notes: string;
  beforeAll(() => {
    // helm template does not print NOTES.txt: render it through a probe template in a copy of the chart.
    const dir = mkdtempSync(path.join(tmpdir(), 'plannt-chart-'));
    try {
      cpSync(CHART, path.join(dir, 'plannt'), { recursive: true });
      writeFileSync(
        path.join(dir, 'plannt/templates/notes-probe.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include "plannt/templates/NOTES.txt" . | quote }}\n',
      );
      const result = helm([
        'template',
        'plannt',
        path.join(dir, 'plannt'),
        '--namespace',
        'payments',
        '--kube-version',
        KUBE_VERSION,
        '--show-only',
        'templates/notes-probe.yaml',
        ...WITH_KEY,
      ]);
      if (result.status !== 0) throw new Error(result.stderr);
      notes = String((parseYaml(result.stdout) as { data: { notes: string } }).data.notes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints the Istio extension provider and an AuthorizationPolicy that uses it', () => {
    const istio = notes.split('== Istio ==')[1]?.split('== Envoy ==')[0] ?? '';
    const [, providerText = '', policyText = ''] = istio.split(/^\d\. .*$/m);
    const provider = parseYaml(providerText) as {
      meshConfig: { extensionProviders: { name: string; envoyExtAuthzGrpc: Raw }[] };
    };
    const policy = parseYaml(policyText) as {
      kind: string;
      spec: { action: string; provider: { name: string } };
    };
    const registered = provider.meshConfig.extensionProviders[0];
    expect(registered?.envoyExtAuthzGrpc).toEqual({
      service: 'plannt.payments.svc.cluster.local',
      port: 9001,
      timeout: '3s',
      failOpen: false,
      statusOnError: '503',
    });
    expect(policy.kind).toBe('AuthorizationPolicy');
    expect(policy.spec.action).toBe('CUSTOM');
    expect(policy.spec.provider.name).toBe(registered?.name);
  });

  it('prints an Envoy ext_authz filter and an HTTP/2 cluster that point at each other', () => {
    const snippet = notes.split('== Envoy ==\n')[1]?.split('\nCheck it:')[0] ?? '';
    const envoy = parseYaml(snippet) as {
      http_filters: { typed_config: { grpc_service: { envoy_grpc: { cluster_name: string } } } }[];
      clusters: {
        name: string;
        typed_extension_protocol_options: Record<string, { explicit_http_config: Raw }>;
        load_assignment: {
          endpoints: { lb_endpoints: { endpoint: { address: { socket_address: Raw } } }[] }[];
        };
      }[];
    };
    const cluster = envoy.clusters[0];
    expect(envoy.http_filters[0]?.typed_config.grpc_service.envoy_grpc.cluster_name).toBe(cluster?.name);
    expect(
      cluster?.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']
        ?.explicit_http_config,
    ).toEqual({ http2_protocol_options: {} });
    expect(cluster?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address).toEqual({
      address: 'plannt.payments.svc.cluster.local',
      port_value: 9001,
    });
  });

  it('warns when LND and Redis are not configured yet', () => {
    expect(notes).toContain('WARNING: LND is not configured');
    expect(notes).toContain('WARNING: Redis is not configured');
  });
});
