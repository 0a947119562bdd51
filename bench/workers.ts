/**
 * `plannt serve` with 1 and with N workers under the same paid load: checks/s, server CPU per check (the
 * primary and every worker, from /proc) and each worker's peak RSS.
 *
 *   npm run build && node dist/bench/workers.js [--workers 1,2] [--rounds 4] [--kinds bundle,pass]
 *     [--calls 100000] [--connections 8] [--streams 16] [--node-options="--max-semi-space-size=4"]
 *     [--node-flags="--heap-growing-percent=50"] [--backend lnd|dev]
 *
 * `--node-options` is the NODE_OPTIONS a pod sets (the chart's nodeOptions); `--node-flags` go on node's
 * command line, as the image's entrypoint gives the V8 flags NODE_OPTIONS refuses. The backend is LND's client,
 * loaded as a production worker loads it and pointed at a closed loopback port (the routes measured never call
 * it), so the RSS is a production worker's; `--backend dev` (one worker only, as the config allows) the dev
 * backend's.
 *
 * Each run starts the CLI as a pod does (its own process tree, a private redis-server spent-set, log level
 * info to a file) and drives it closed loop with h2load (bench/h2load.ts), one token per kind used for
 * every call: `bundle` (a bundle of MAX_USES: verified, counted in Redis by the Lua script, allowed) and
 * `pass` (verified, allowed, no Redis call). Every call must be allowed, by the server's own
 * `plannt_checks_total`. Runs alternate between the worker counts, round after round, so a change in the
 * machine's other load touches both alike; each run reports the CPU time the hypervisor stole meanwhile.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_USES } from '../src/core/routes';
import { keyring } from '../src/l402/keys';
import { mintMacaroon } from '../src/l402/mint';
import { serializeCheckRequest } from './check-codec';
import { envoyCheckRequest } from './envoy-request';
import { assertH2load, runH2load, writeGrpcBody } from './h2load';
import { machineTicks, treeCpuUs } from './proc-cpu';
import { BENCH_KEY_ID, BENCH_LOCATION, BENCH_ROUTE } from './protocol';
import { startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '4' },
    kinds: { type: 'string', default: 'bundle,pass' },
    calls: { type: 'string', default: '100000' },
    warmup: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '8' },
    streams: { type: 'string', default: '16' },
    'node-options': { type: 'string', default: '' },
    'node-flags': { type: 'string', default: '' },
    backend: { type: 'string', default: 'lnd' },
  },
});
const ROUNDS = Number(args.rounds);
const CALLS = Number(args.calls);
const WARMUP = Number(args.warmup);
const CLI = path.join(__dirname, '../src/cli.js');
const QUIET_STEAL_PERCENT = 3;

const KINDS = {
  bundle: { route: 'bench.workers.bundle', prefix: '/v1/bundle/', uses: MAX_USES },
  pass: { route: 'bench.workers.pass', prefix: '/v1/pass/', uses: 'unlimited' },
} as const;
type Kind = keyof typeof KINDS;
const kinds = (args.kinds ?? '').split(',').map((k) => {
  if (!(k in KINDS)) throw new Error(`--kinds: ${k} is not one of ${Object.keys(KINDS).join(', ')}`);
  return k as Kind;
});

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

interface Run {
  workers: number;
  kind: Kind;
  checksPerSecond: number;
  cpuUsPerCheck: number;
  loadUsPerCheck: number;
  redisUsPerCheck: number;
  stealPercent: number;
  peakRssMb: number[];
  /** The primary's, when it only supervises (more than one worker). */
  peakPrimaryRssMb?: number;
  notAllowed: number;
}

interface Server {
  grpcPort: number;
  adminPort: number;
  /** The process `plannt serve` started: its CPU with its workers' is the server's. */
  pid: number;
  /** The processes that decide: the single process, or the workers. */
  workerPids: number[];
}

/** A request for `kind`'s route carrying a token that buys `uses` of it, gRPC-framed in a file. */
function bodyFile(dir: string, name: string, kind: Kind, rootKey: Buffer): string {
  const { route, prefix, uses } = KINDS[kind];
  const preimage = randomBytes(32);
  const macaroon = mintMacaroon(
    createHash('sha256').update(preimage).digest(),
    {
      service: BENCH_ROUTE.service,
      routeId: route,
      priceSats: BENCH_ROUTE.priceSats,
      validUntil: Math.floor(Date.now() / 1000) + 3600,
      uses,
    },
    keyring([{ id: BENCH_KEY_ID, secret: rootKey }], BENCH_KEY_ID),
    BENCH_LOCATION,
  );
  const request = envoyCheckRequest({
    authorization: `L402 ${macaroon.toString('base64')}:${preimage.toString('hex')}`,
    requestId: name,
    nowSeconds: Math.floor(Date.now() / 1000),
    path: `${prefix}forecast?city=lisbon`,
  });
  const file = path.join(dir, `${name}.bin`);
  writeGrpcBody(file, serializeCheckRequest(request));
  return file;
}

function backendYaml(dir: string): string {
  if (args.backend === 'dev') return '{ kind: dev }';
  if (args.backend !== 'lnd') throw new Error('--backend: dev or lnd');
  const macaroon = path.join(dir, 'invoice.macaroon');
  writeFileSync(macaroon, randomBytes(64));
  return `{ kind: lnd, lnd: { socket: "127.0.0.1:1", macaroon_file: "${macaroon}" } }`;
}

async function allowedSoFar(server: Server): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('plannt_checks_total{') && l.includes('decision="allow"'))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

async function startServer(workers: number, redisUrl: string, rootKey: Buffer, dir: string) {
  const config = path.join(dir, `plannt-${workers}.yaml`);
  const routes = Object.values(KINDS).map(
    (k) =>
      `  - { id: ${k.route}, service: ${BENCH_ROUTE.service}, price_sats: ${BENCH_ROUTE.priceSats}, path: { prefix: ${k.prefix} }, uses: ${k.uses} }`,
  );
  writeFileSync(
    config,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: ${BENCH_KEY_ID}, key: "${rootKey.toString('hex')}" }]
current_key_id: ${BENCH_KEY_ID}
backend: ${backendYaml(dir)}
spent_set: { kind: redis, redis: { url: "${redisUrl}", key_prefix: "w${workers}-${randomBytes(4).toString('hex')}:", command_timeout_ms: 2000 } }
routes:
${routes.join('\n')}
drain_seconds: 0
workers: ${workers}
`,
  );
  const logFile = path.join(dir, `plannt-${workers}.log`);
  const nodeFlags = (args['node-flags'] ?? '').split(' ').filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, CLI, 'serve', '--config', config], {
    stdio: ['ignore', openSync(logFile, 'w'), 'inherit'],
    env: { ...process.env, NODE_ENV: 'bench', NODE_OPTIONS: args['node-options'] },
  });
  const logs = () =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  let started: Record<string, unknown> | undefined;
  for (let i = 0; !started; i++) {
    if (i > 600 || child.exitCode !== null) {
      await stop();
      throw new Error('plannt did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
    started = logs().find((l) => l.msg === 'plannt started');
  }
  const workerPids =
    workers === 1
      ? [child.pid ?? 0]
      : logs().flatMap((l) => (l.msg === 'worker started' ? [Number(l.pid)] : []));
  const server: Server = {
    grpcPort: Number(started.grpc_port),
    adminPort: Number(started.admin_port),
    pid: child.pid ?? 0,
    workerPids,
  };
  return { server, stop };
}

async function measure(
  workers: number,
  kind: Kind,
  server: Server,
  body: string,
  redisPid: number,
): Promise<Run> {
  const load = (calls: number) =>
    runH2load({
      port: server.grpcPort,
      bodyFile: body,
      calls,
      connections: Number(args.connections),
      streamsPerConnection: Number(args.streams),
    });
  await load(WARMUP);
  const peak = server.workerPids.map(() => 0);
  const primary = server.workerPids.includes(server.pid) ? undefined : server.pid;
  let primaryPeak = 0;
  const sampler = setInterval(() => {
    server.workerPids.forEach((pid, i) => {
      peak[i] = Math.max(peak[i] ?? 0, rssMb(pid));
    });
    if (primary) primaryPeak = Math.max(primaryPeak, rssMb(primary));
  }, 250);
  const [cpuBefore, redisBefore, machineBefore, allowedBefore] = [
    treeCpuUs(server.pid),
    treeCpuUs(redisPid),
    machineTicks(),
    await allowedSoFar(server),
  ];
  const report = await load(CALLS);
  const [serverCpu, redisCpu, machineAfter] = [
    treeCpuUs(server.pid) - cpuBefore,
    treeCpuUs(redisPid) - redisBefore,
    machineTicks(),
  ];
  clearInterval(sampler);
  const allowed = (await allowedSoFar(server)) - allowedBefore;
  return {
    workers,
    kind,
    checksPerSecond: report.callsPerSecond,
    cpuUsPerCheck: serverCpu / CALLS,
    loadUsPerCheck: report.cpuUsPerCall,
    redisUsPerCheck: redisCpu / CALLS,
    stealPercent:
      (100 * (machineAfter.steal - machineBefore.steal)) /
      Math.max(1, machineAfter.total - machineBefore.total),
    peakRssMb: peak,
    ...(primary && { peakPrimaryRssMb: primaryPeak }),
    notAllowed: CALLS - Math.min(allowed, report.ok),
  };
}

async function run(workers: number, redis: { url: string; pid: number }, dir: string): Promise<Run[]> {
  const rootKey = randomBytes(32);
  const { server, stop } = await startServer(workers, redis.url, rootKey, dir);
  try {
    const runs: Run[] = [];
    for (const kind of kinds)
      runs.push(
        await measure(workers, kind, server, bodyFile(dir, `${kind}-${workers}`, kind, rootKey), redis.pid),
      );
    return runs;
  } finally {
    await stop();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  assertH2load();
  const redis = await startRedisProcess();
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-bench-workers-'));
  try {
    process.stdout.write(
      `plannt bench: workers (${CALLS} calls per run, ${args.streams} in flight on each of ${args.connections} connections, h2load, ${args.backend} backend, NODE_OPTIONS="${args['node-options']}", node flags "${args['node-flags']}")\n`,
    );
    const counts = (args.workers ?? '1').split(',').map(Number);
    const runs: Run[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const n of round % 2 ? counts : [...counts].reverse()) {
        for (const r of await run(n, redis, dir)) {
          runs.push(r);
          process.stdout.write(
            `  round ${round}, workers ${r.workers}, ${r.kind.padEnd(6)} ${r.checksPerSecond.toFixed(0).padStart(6)} checks/s  server CPU ${r.cpuUsPerCheck.toFixed(0)} µs/check (${((r.cpuUsPerCheck * r.checksPerSecond) / 1e6).toFixed(2)} cores)  h2load ${r.loadUsPerCheck.toFixed(1)}  redis ${r.redisUsPerCheck.toFixed(1)}  stolen ${r.stealPercent.toFixed(0)}%  peak RSS per worker ${r.peakRssMb.map((m) => `${m.toFixed(0)} MB`).join(', ')}${r.peakPrimaryRssMb ? `, primary ${r.peakPrimaryRssMb.toFixed(0)} MB` : ''}  not allowed ${r.notAllowed}\n`,
          );
        }
      }
    }
    const [one, ...more] = counts;
    for (const kind of kinds)
      for (const n of more) {
        const runOf = (w: number | undefined, round: number) =>
          runs.filter((r) => r.kind === kind && r.workers === w)[round];
        const rate = (w: number | undefined, round: number) => runOf(w, round)?.checksPerSecond ?? Number.NaN;
        const perRound = Array.from({ length: ROUNDS }, (_, i) => rate(n, i) / rate(one, i));
        // The hypervisor's stolen time slows one run of a pair and not the other; only quiet pairs compare.
        const quiet = perRound.filter((_, i) =>
          [runOf(n, i), runOf(one, i)].every((r) => (r?.stealPercent ?? 100) <= QUIET_STEAL_PERCENT),
        );
        const cpu = (w: number | undefined) =>
          mean(runs.filter((r) => r.kind === kind && r.workers === w).map((r) => r.cpuUsPerCheck));
        process.stdout.write(
          `  ${kind}: ${n} workers / ${one}: ${mean(perRound).toFixed(2)}× checks/s (per round ${perRound.map((x) => x.toFixed(2)).join(', ')}); server CPU per check ${(cpu(n) / cpu(one)).toFixed(2)}×; rounds with ≤ ${QUIET_STEAL_PERCENT}% stolen in both runs: ${quiet.map((x) => x.toFixed(2)).join(', ') || 'none'}\n`,
        );
      }
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
