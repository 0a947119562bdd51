/**
 * `plannt serve` with 1 and with N workers under the same verify load: checks/s, server CPU per check (the
 * primary and every worker, from /proc) and each worker's peak RSS.
 *
 *   npm run build && node dist/bench/workers.js [--workers 1,2] [--seconds 20] [--concurrency 64]
 *     [--connections 8] [--node-options "--max-semi-space-size=2"]
 *
 * Each run starts the CLI as a pod does (its own process tree, a private redis-server spent-set, log level
 * info to a file) and drives it closed loop from this process with grpc-js clients on separate connections,
 * each check a freshly minted paid token. The load generator shares the machine's cores with the server:
 * compare runs of one invocation, not machines.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { AuthorizationClient } from '../src/envoy/protos';
import { type Keyring, keyring } from '../src/l402/keys';
import { mintMacaroon } from '../src/l402/mint';
import { startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    seconds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '64' },
    connections: { type: 'string', default: '8' },
    'node-options': { type: 'string', default: '' },
  },
});
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const CONNECTIONS = Number(args.connections);
const CLI = path.join(__dirname, '../src/cli.js');
const TICKS_PER_SECOND = 100;

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
/** utime + stime of a process, in seconds. */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
};

type UnaryCall = (
  request: object,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: { ok_response?: unknown }) => void,
) => void;

interface Run {
  workers: number;
  checksPerSecond: number;
  cpuUsPerCheck: number;
  peakRssMb: number[];
  failures: number;
}

async function run(workers: number, redisUrl: string, dir: string): Promise<Run> {
  const rootKey = randomBytes(32);
  const keys = keyring([{ id: 7, secret: rootKey }], 7);
  const config = path.join(dir, `plannt-${workers}.yaml`);
  writeFileSync(
    config,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: 7, key: "${rootKey.toString('hex')}" }]
current_key_id: 7
backend: { kind: dev }
spent_set: { kind: redis, redis: { url: "${redisUrl}", command_timeout_ms: 2000 } }
routes: [{ id: forecast, service: weather, price_sats: 10, path: { prefix: /v1/forecast } }]
drain_seconds: 0
workers: ${workers}
`,
  );
  const logFile = path.join(dir, `plannt-${workers}.log`);
  const server: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    stdio: ['ignore', openSync(logFile, 'w'), 'inherit'],
    env: { ...process.env, NODE_ENV: 'bench', NODE_OPTIONS: args['node-options'] },
  });
  const logs = () =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    return await measure(workers, server, logs, keys);
  } finally {
    if (server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
  }
}

async function measure(
  workers: number,
  server: ChildProcess,
  logs: () => Record<string, unknown>[],
  keys: Keyring,
): Promise<Run> {
  let started: Record<string, unknown> | undefined;
  for (let i = 0; !started; i++) {
    if (i > 600) throw new Error('plannt did not start');
    await new Promise((r) => setTimeout(r, 100));
    started = logs().find((l) => l.msg === 'plannt started');
  }
  const pids =
    workers === 1
      ? [server.pid ?? 0]
      : logs().flatMap((l) => (l.msg === 'worker started' ? [Number(l.pid)] : []));
  const tree = workers === 1 ? pids : [server.pid ?? 0, ...pids];
  const clients = Array.from(
    { length: CONNECTIONS },
    () =>
      new AuthorizationClient(`127.0.0.1:${started?.grpc_port}`, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      }),
  );
  const check = (client: grpc.Client) => {
    const preimage = randomBytes(32);
    const hash = createHash('sha256').update(preimage).digest();
    const terms = {
      service: 'weather',
      routeId: 'forecast',
      priceSats: 10,
      validUntil: Math.floor(Date.now() / 1000) + 600,
    };
    const authorization = `L402 ${mintMacaroon(hash, terms, keys, 'plannt').toString('base64')}:${preimage.toString('hex')}`;
    const request = {
      attributes: {
        request: {
          http: { method: 'GET', host: 'api.example.com', path: '/v1/forecast', headers: { authorization } },
        },
      },
    };
    const call = (client as unknown as { Check: UnaryCall }).Check.bind(client);
    return new Promise<boolean>((resolve) =>
      call(request, { deadline: Date.now() + 5000 }, (err, res) => resolve(!err && !!res?.ok_response)),
    );
  };
  const loop = async (until: number, i: number, counts: { ok: number; failed: number }) => {
    while (Date.now() < until) {
      if (await check(clients[i % CONNECTIONS] as grpc.Client)) counts.ok++;
      else counts.failed++;
    }
  };
  // Warm-up, then the measured window.
  await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, i) => loop(Date.now() + 3000, i, { ok: 0, failed: 0 })),
  );
  const peak = pids.map(() => 0);
  const sampler = setInterval(() => {
    pids.forEach((pid, i) => {
      peak[i] = Math.max(peak[i] ?? 0, rssMb(pid));
    });
  }, 500);
  const cpuBefore = tree.reduce((s, pid) => s + cpuSeconds(pid), 0);
  const counts = { ok: 0, failed: 0 };
  const startedAt = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, i) => loop(startedAt + SECONDS * 1000, i, counts)),
  );
  const elapsed = (Date.now() - startedAt) / 1000;
  const cpu = tree.reduce((s, pid) => s + cpuSeconds(pid), 0) - cpuBefore;
  clearInterval(sampler);
  for (const c of clients) c.close();
  return {
    workers,
    checksPerSecond: counts.ok / elapsed,
    cpuUsPerCheck: (cpu / counts.ok) * 1e6,
    peakRssMb: peak,
    failures: counts.failed,
  };
}

async function main(): Promise<void> {
  const redis = await startRedisProcess();
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-bench-workers-'));
  try {
    process.stdout.write(
      `plannt bench: workers (${SECONDS} s, ${CONCURRENCY} in flight on ${CONNECTIONS} connections, NODE_OPTIONS="${args['node-options']}")\n`,
    );
    const runs: Run[] = [];
    for (const n of (args.workers ?? '1').split(',').map(Number)) {
      const r = await run(n, redis.url, dir);
      runs.push(r);
      process.stdout.write(
        `  workers ${r.workers}: ${r.checksPerSecond.toFixed(0).padStart(6)} checks/s  server CPU ${r.cpuUsPerCheck.toFixed(0)} µs/check  peak RSS per worker ${r.peakRssMb.map((m) => `${m.toFixed(0)} MB`).join(', ')}  failures ${r.failures}\n`,
      );
    }
    const [one, ...more] = runs;
    for (const r of more)
      if (one)
        process.stdout.write(
          `  ${r.workers} workers / 1: ${(r.checksPerSecond / one.checksPerSecond).toFixed(2)}×\n`,
        );
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
