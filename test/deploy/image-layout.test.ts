/**
 * The pod, without a container engine. The Dockerfile's final stage is assembled as a directory from its
 * own COPY lines (production dependencies only), then started the way the chart's Deployment starts it:
 * the image's entrypoint with the Deployment's args, the ConfigMap and Secret files at their mount paths
 * (group-owned by the pod's fsGroup, mode 0440), the container's environment with its Secret references
 * resolved, the image's NODE_ENV=production, as user and group 65532. It serves a fake LND (LND's gRPC over
 * TLS) and the real Redis: a challenge, a payment, a replay, and a clean drain on SIGTERM.
 *
 * Only two things differ from the cluster, both for the test's sake: the listen addresses are loopback
 * ports chosen by the OS, and mount paths sit under a temporary root instead of /.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { parseAllDocuments, parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  CHART,
  ENSURE_TOOLS_TIMEOUT_MS,
  ensureDeployTools,
  helm,
  KUBE_VERSION,
  REPO,
  removeHelmHome,
} from '../support/deploy-tools';
import { authorizationClient, check, parseChallenge } from '../support/envoy-client';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix, waitFor } from '../support/plannt';

type Raw = Record<string, unknown>;

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  instructions: Instruction[];
}

/**
 * The Dockerfile's stages and instructions (line continuations joined, comments dropped), with the global
 * ARGs' defaults substituted into FROM.
 */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const [image = '', , name = ''] = args.split(/\s+/);
      const from = image.replace(/\$\{(\w+)\}/g, (_, arg: string) => globalArgs.get(arg) ?? '');
      stages.push({ from, name, instructions: [] });
    } else if (op.toUpperCase() === 'ARG' && stages.length === 0) {
      const [arg = '', value = ''] = args.split('=');
      globalArgs.set(arg, value);
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
const runtime = dockerfile.at(-1) as Stage;
const argsOf = (op: string): string[] => runtime.instructions.filter((i) => i.op === op).map((i) => i.args);
const jsonArray = (op: string): string[] => JSON.parse(argsOf(op)[0] ?? '[]') as string[];

/** The directories of the production dependencies, as `npm ci --omit=dev` installs them. */
function productionPackages(): string[] {
  const result = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return result.stdout
    .split('\n')
    .map((p) => path.relative(REPO, p.trim()))
    .filter((p) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(p));
}

/** Hard links where possible (same filesystem), so the tree costs no copy. */
function copyTree(from: string, to: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  const linked = spawnSync('cp', ['-al', from, to]);
  if (linked.status !== 0) {
    const copied = spawnSync('cp', ['-a', from, to]);
    if (copied.status !== 0) throw new Error(`cp ${from} ${to}: ${copied.stderr}`);
  }
}

describe("the image's final stage, started as the chart's Deployment starts it", () => {
  const prefix = uniqueRedisPrefix();
  let root: string;
  let lnd: FakeLnd;
  let child: ChildProcess | undefined;
  let client: grpc.Client | undefined;
  let output = '';
  let started: { grpc_port: number; admin_port: number } | undefined;
  let deployment: {
    spec: {
      template: {
        spec: {
          securityContext: { runAsUser: number; runAsGroup: number; fsGroup: number };
          containers: {
            args: string[];
            env: {
              name: string;
              value?: string;
              valueFrom?: { secretKeyRef: { name: string; key: string } };
            }[];
            volumeMounts: { name: string; mountPath: string }[];
          }[];
          volumes: {
            name: string;
            configMap?: { name: string; items: { key: string; path: string }[] };
            secret?: { secretName: string; defaultMode?: number; items: { key: string; path: string }[] };
            emptyDir?: Raw;
          }[];
        };
      };
    };
  };
  let launch: (env: Record<string, string>) => ChildProcess;

  beforeAll(async () => {
    ensureDeployTools();
    if (!existsSync(path.join(REPO, 'dist/src/cli.js')))
      throw new Error('dist/ is missing: run npm run build');
    lnd = await startFakeLnd();
    root = mkdtempSync(path.join(tmpdir(), 'plannt-pod-'));
    chmodSync(root, 0o755);

    // The final stage's filesystem, from its COPY lines.
    const workdir = argsOf('WORKDIR').at(-1) ?? '/';
    const app = path.join(root, workdir);
    for (const copy of argsOf('COPY')) {
      const parts = copy.split(/\s+/);
      const fromStage = parts[0]?.startsWith('--from=') ? parts.shift()?.slice('--from='.length) : undefined;
      const [source = '', target = ''] = parts;
      const destination = path.resolve(app, target);
      if (fromStage === 'deps') {
        // npm ci --omit=dev in /app: the production packages only.
        expect(source).toBe('/app/node_modules');
        for (const pkg of productionPackages())
          copyTree(path.join(REPO, pkg), path.join(destination, pkg.slice(13)));
      } else if (fromStage === 'build') {
        // tsc in /app compiles src/ to dist/src/, as `npm run build` does here.
        copyTree(path.join(REPO, path.relative('/app', source)), destination);
      } else {
        const from = path.join(REPO, source);
        copyTree(from, target.endsWith('/') ? path.join(destination, path.basename(from)) : destination);
      }
    }
    expect(existsSync(path.join(app, 'node_modules/@biomejs'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules/ln-service'))).toBe(true);

    // The chart, rendered for this LND and Redis.
    const valuesFile = path.join(root, 'values.yaml');
    writeFileSync(
      valuesFile,
      JSON.stringify({
        config: {
          spent_set: { kind: 'redis', redis: { key_prefix: prefix } },
          routes: [{ id: 'forecast', service: 'weather', price_sats: 10, path: { prefix: '/v1/forecast' } }],
          drain_seconds: 0,
          shutdown_grace_ms: 2000,
        },
        lnd: {
          socket: lnd.socket,
          tlsCert: Buffer.from(lnd.certBase64, 'base64').toString('utf8'),
          macaroonBase64: Buffer.from(lnd.macaroonHex, 'hex').toString('base64'),
        },
        redis: { url: REDIS_URL },
        // helm template cannot see a cluster, so the chart refuses to mint a key that would change per render.
        rootKeys: { keys: [{ id: 1, key: randomBytes(32).toString('hex') }] },
      }),
    );
    const rendered = helm(['template', 'plannt', CHART, '--kube-version', KUBE_VERSION, '-f', valuesFile]);
    if (rendered.status !== 0) throw new Error(rendered.stderr);
    const objects = parseAllDocuments(rendered.stdout)
      .map(
        (d) => d.toJS() as { kind: string; metadata: { name: string }; data?: Record<string, string> } | null,
      )
      .filter((o) => o !== null);
    const find = (kind: string, name: string) => {
      const o = objects.find((x) => x?.kind === kind && x.metadata.name === name);
      if (!o) throw new Error(`no ${kind} ${name}`);
      return o;
    };
    deployment = objects.find((o) => o?.kind === 'Deployment') as unknown as typeof deployment;
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    if (!container) throw new Error('no container');
    const { runAsUser, runAsGroup, fsGroup } = pod.securityContext;

    // The volumes, as the kubelet mounts them: files group-owned by fsGroup.
    const under = (p: string): string => path.join(root, p);
    for (const mount of container.volumeMounts) {
      const volume = pod.volumes.find((v) => v.name === mount.name);
      const dir = under(mount.mountPath);
      mkdirSync(dir, { recursive: true });
      chownSync(dir, 0, fsGroup);
      chmodSync(dir, volume?.emptyDir ? 0o1777 : 0o755);
      const source = volume?.configMap
        ? {
            data: find('ConfigMap', volume.configMap.name).data ?? {},
            items: volume.configMap.items,
            b64: false,
          }
        : volume?.secret
          ? {
              data: find('Secret', volume.secret.secretName).data ?? {},
              items: volume.secret.items,
              b64: true,
            }
          : undefined;
      for (const item of source?.items ?? []) {
        const value = source?.data[item.key];
        if (value === undefined) throw new Error(`volume ${mount.name}: no key ${item.key}`);
        const file = path.join(dir, item.path);
        writeFileSync(file, source?.b64 ? Buffer.from(value, 'base64') : value);
        chownSync(file, 0, fsGroup);
        chmodSync(file, volume?.secret?.defaultMode ?? 0o644);
      }
    }
    // The test's two changes: mount paths under the temporary root, loopback ports chosen by the OS.
    const configPath = under('/etc/plannt/plannt.yaml');
    const config = parseYaml(
      readFileSync(configPath, 'utf8').replaceAll('/etc/plannt/', under('/etc/plannt/')),
    );
    config.listen = { grpc: '127.0.0.1:0', http: '127.0.0.1:0', admin: '127.0.0.1:0' };
    writeFileSync(configPath, stringifyYaml(config));

    const secrets = objects.filter((o) => o?.kind === 'Secret');
    const env: Record<string, string> = {};
    for (const e of container.env) {
      const ref = e.valueFrom?.secretKeyRef;
      const secret = ref && secrets.find((s) => s?.metadata.name === ref.name);
      const value = ref
        ? Buffer.from(secret?.data?.[ref.key] ?? '', 'base64').toString('utf8')
        : (e.value ?? '');
      // Paths into the mounts (PLANNT_ROOT_KEYS_FILE) move under the temporary root like the config's.
      env[e.name] = value.startsWith('/etc/plannt/') ? under(value) : value;
    }
    for (const e of argsOf('ENV')) {
      const eq = e.indexOf('=');
      env[e.slice(0, eq)] = e.slice(eq + 1);
    }
    // The image's Node at the entrypoint's path is this test's own Node (the same major version, checked
    // below), linked under the root: uid 65532 could not run it from a cache under a private home directory.
    // The entrypoint is node, the V8 flags NODE_OPTIONS refuses, then the script.
    const [node = '', ...rest] = jsonArray('ENTRYPOINT');
    const script = rest.pop() ?? '';
    copyTree(process.execPath, under(node));
    const args = container.args.map((a) => (a.startsWith('/etc/plannt/') ? under(a) : a));
    launch = (extraEnv) =>
      spawn(under(node), [...rest, under(script), ...args], {
        cwd: app,
        uid: runAsUser,
        gid: runAsGroup,
        env: { PATH: '/usr/bin:/bin', ...env, ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });

    child = launch({});
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const up = await waitFor(async () => {
      const line = output.split('\n').find((l) => l.includes('"plannt started"'));
      if (line) started = JSON.parse(line) as typeof started;
      return started !== undefined || child?.exitCode !== null;
    }, 30_000);
    if (!up || !started) throw new Error(`Plannt did not start:\n${output}`);
    const admin = `http://127.0.0.1:${started.admin_port}`;
    const ready = await waitFor(async () => (await fetch(`${admin}/readyz`)).status === 200, 15_000, 100);
    if (!ready) throw new Error(`Plannt did not become ready:\n${output}`);
    client = authorizationClient(started.grpc_port);
  }, ENSURE_TOOLS_TIMEOUT_MS);

  afterAll(async () => {
    client?.close();
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child?.once('exit', () => resolve());
        child?.kill('SIGKILL');
      });
    }
    await lnd?.stop();
    await deleteRedisKeys(prefix);
    if (root) rmSync(root, { recursive: true, force: true });
    removeHelmHome();
  });

  it('is a distroless Node 24, non-root image that installs production dependencies only', () => {
    // Tag, and a digest once one is recorded.
    expect(runtime.from).toMatch(/^gcr\.io\/distroless\/nodejs24-debian12:nonroot(@sha256:[0-9a-f]{64})?$/);
    for (const stage of dockerfile.slice(0, -1))
      expect(stage.from).toMatch(/^node:24(\.\d+\.\d+)?-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    // This test starts the final stage's files with its own Node: the image's major version.
    expect(process.versions.node.split('.')[0]).toBe('24');
    expect(argsOf('USER')).toEqual(['65532:65532']);
    expect(argsOf('ENV')).toContain('NODE_ENV=production');
    const deps = dockerfile.find((s) => s.name === 'deps');
    expect(deps?.instructions.find((i) => i.op === 'RUN')?.args).toMatch(/^npm ci --omit=dev\b/);
    // The chart's pod runs as the image's user.
    const { runAsUser, runAsGroup } = deployment.spec.template.spec.securityContext;
    expect(`${runAsUser}:${runAsGroup}`).toBe(argsOf('USER')[0]);
  });

  it("starts from the chart's args with the image's entrypoint", () => {
    expect(jsonArray('ENTRYPOINT')).toEqual([
      '/nodejs/bin/node',
      '--heap-growing-percent=50',
      '/app/dist/src/cli.js',
    ]);
    expect(deployment.spec.template.spec.containers[0]?.args).toEqual(jsonArray('CMD'));
  });

  it('runs as uid 65532 and reads its ConfigMap and Secret files through the fsGroup', () => {
    expect(output).toContain('"plannt started"');
    expect(output).toContain('"backend":"lnd"');
    expect(output).toContain('"spent_set":"redis"');
    const status = readFileSync(`/proc/${child?.pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe('65532');
  });

  it('challenges through LND, allows the paid token once, and remembers it in Redis', async () => {
    if (!client) throw new Error('no client');
    const request = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };
    const challenge = await check(client, request);
    expect(challenge.status).toBe(402);
    const { macaroon, invoice } = parseChallenge(challenge.header('www-authenticate')[0] ?? '');
    const paid = lnd.invoices.find((i) => i.paymentRequest === invoice);
    expect(paid?.valueSat).toBe(10);
    const authorization = `L402 ${macaroon}:${paid?.preimage.toString('hex')}`;
    expect((await check(client, { ...request, headers: { authorization } })).status).toBe(200);
    expect((await check(client, { ...request, headers: { authorization } })).body.error).toBe('token_spent');
  });

  it('refuses the dev backend: the image sets NODE_ENV=production', async () => {
    const dev = launch({ PLANNT_BACKEND: 'dev' });
    let text = '';
    dev.stdout?.on('data', (d: Buffer) => {
      text += d.toString();
    });
    dev.stderr?.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => dev.kill('SIGKILL'), 20_000);
      dev.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(78);
    expect(text).toContain('refused when NODE_ENV=production');
  });

  it('drains and exits 0 on SIGTERM, as at the end of the preStop sleep', async () => {
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (c) => resolve(c)));
    child?.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('plannt stopped');
  });
});
