/**
 * `plannt serve` with 1 and with N workers under the same verify load: checks/s, server CPU per check (the
 * primary and every worker, from /proc) and each worker's peak RSS.
 *
 *   npm run build && bench/tools/build.sh && node dist/bench/workers.js [--workers 1,2] [--rounds 2]
 *     [--calls 60000] [--concurrency 64] [--connections 8] [--node-options "--max-semi-space-size=2"]
 *
 * Each run starts the CLI as a pod does (its own process tree, a private redis-server spent-set, log level
 * info to a file) and drives it closed loop with the Go load generator (bin/authzbench: ~40 µs of CPU a
 * call, a fraction of grpc-js clients'), each check a freshly minted paid token. Runs alternate between the
 * worker counts, round after round, so a change in the machine's other load touches both alike.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { assertBuilt, runLoad, writeRequestFile } from './authzbench';
import { serializeCheckRequest } from './check-codec';
import { envoyCheckRequest, paidCredentialMinter } from './envoy-request';
import { BENCH_KEY_ID, BENCH_ROUTE } from './protocol';
import { startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '2' },
    calls: { type: 'string', default: '60000' },
    warmup: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '64' },
    connections: { type: 'string', default: '8' },
    'node-options': { type: 'string', default: '' },
  },
});
const ROUNDS = Number(args.rounds);
const CALLS = Number(args.calls);
const WARMUP = Number(args.warmup);
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

interface Run {
  workers: number;
  checksPerSecond: number;
  cpuUsPerCheck: number;
  peakRssMb: number[];
  failures: number;
}

/** `count` Envoy-shaped checks, each with its own freshly minted token, in a file the generator reads. */
function requestFile(dir: string, name: string, rootKeyHex: string, count: number): string {
  const mint = paidCredentialMinter({
    rootKeyHex,
    keyId: BENCH_KEY_ID,
    validUntil: Math.floor(Date.now() / 1000) + 3600,
  });
  const nowSeconds = Math.floor(Date.now() / 1000);
  const requests = Array.from({ length: count }, (_, i) =>
    serializeCheckRequest(
      envoyCheckRequest({ authorization: mint().authorization, requestId: `w-${name}-${i}`, nowSeconds }),
    ),
  );
  const file = path.join(dir, `${name}.bin`);
  writeRequestFile(file, requests);
  return file;
}

async function run(workers: number, redisUrl: string, dir: string): Promise<Run> {
  const rootKeyHex = randomBytes(32).toString('hex');
  const config = path.join(dir, `plannt-${workers}.yaml`);
  writeFileSync(
    config,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: ${BENCH_KEY_ID}, key: "${rootKeyHex}" }]
current_key_id: ${BENCH_KEY_ID}
backend: { kind: dev }
spent_set: { kind: redis, redis: { url: "${redisUrl}", key_prefix: "w${workers}-${rootKeyHex.slice(0, 8)}:", command_timeout_ms: 2000 } }
routes:
  - { id: ${BENCH_ROUTE.id}, service: ${BENCH_ROUTE.service}, price_sats: ${BENCH_ROUTE.priceSats}, path: { prefix: ${BENCH_ROUTE.pathPrefix} } }
drain_seconds: 0
workers: ${workers}
`,
  );
  const warmup = requestFile(dir, `warmup-${workers}`, rootKeyHex, WARMUP);
  const measured = requestFile(dir, `measured-${workers}`, rootKeyHex, CALLS);
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
    return await measure(workers, server, logs, warmup, measured);
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
  warmupFile: string,
  measuredFile: string,
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
  const load = (requestsFile: string, calls: number) =>
    runLoad({
      target: `127.0.0.1:${started?.grpc_port}`,
      requestsFile,
      calls,
      concurrency: CONCURRENCY,
      conns: CONNECTIONS,
      deadlineMs: 5000,
    });
  await load(warmupFile, WARMUP);
  const peak = pids.map(() => 0);
  const sampler = setInterval(() => {
    pids.forEach((pid, i) => {
      peak[i] = Math.max(peak[i] ?? 0, rssMb(pid));
    });
  }, 250);
  const cpuBefore = tree.reduce((s, pid) => s + cpuSeconds(pid), 0);
  const report = await load(measuredFile, CALLS);
  const cpu = tree.reduce((s, pid) => s + cpuSeconds(pid), 0) - cpuBefore;
  clearInterval(sampler);
  return {
    workers,
    checksPerSecond: report.allowed / (report.elapsedMs / 1000),
    cpuUsPerCheck: (cpu / report.allowed) * 1e6,
    peakRssMb: peak,
    failures: report.calls - report.allowed,
  };
}

async function main(): Promise<void> {
  assertBuilt();
  const redis = await startRedisProcess();
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-bench-workers-'));
  try {
    process.stdout.write(
      `plannt bench: workers (${CALLS} calls per run, ${CONCURRENCY} in flight on ${CONNECTIONS} connections, Go load generator, NODE_OPTIONS="${args['node-options']}")\n`,
    );
    const counts = (args.workers ?? '1').split(',').map(Number);
    const runs: Run[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const n of round % 2 ? counts : [...counts].reverse()) {
        const r = await run(n, redis.url, dir);
        runs.push(r);
        process.stdout.write(
          `  round ${round}, workers ${r.workers}: ${r.checksPerSecond.toFixed(0).padStart(6)} checks/s  server CPU ${r.cpuUsPerCheck.toFixed(0)} µs/check  peak RSS per worker ${r.peakRssMb.map((m) => `${m.toFixed(0)} MB`).join(', ')}  failures ${r.failures}\n`,
        );
      }
    }
    const mean = (n: number) => {
      const of = runs.filter((r) => r.workers === n);
      return of.reduce((sum, r) => sum + r.checksPerSecond, 0) / of.length;
    };
    const [one, ...more] = counts;
    for (const n of more)
      if (one !== undefined)
        process.stdout.write(
          `  ${n} workers / ${one}: ${(mean(n) / mean(one)).toFixed(2)}× (mean of ${ROUNDS} rounds)\n`,
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
