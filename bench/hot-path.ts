/**
 * Issue 12's bench: Plannt's hot path against allow-all baselines, in one run, driven by a Go load generator in
 * its own process, so the CPU per check is the server's alone (the generator reports its own separately).
 *
 *   npm run bench:hot-path [-- options]      (builds bin/authzbench first: bench/tools/build.sh)
 *
 * Targets: Go allow-all (bench/tools serve), grpc-js allow-all (allow-all-server.ts), node:http2 allow-all
 * (http2-allow-all-server.ts: node's HTTP/2 with nothing above it, the streams Plannt's Check runs on), Plannt free route,
 * verify with the Redis and with the memory spent-set, challenge (dev backend); scaling with `workers` is
 * bench/workers.ts's, since the cluster lives in `plannt serve`, not in this startApp host. Per target, rounds alternate the order (A B C …, then
 * reversed): a closed-loop warm-up, then a measured closed-loop batch at saturation giving checks/s, the
 * server's CPU per check (from /proc, the server and its children) and, for the Node servers, its GC pause per
 * check and longest pause (perf_hooks). Then an open-loop run at 25 % and 50 % of
 * that target's peak gives p50/p99 below saturation. The server is pinned to one core (taskset) when available.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Redis from 'ioredis';
import {
  AUTHZBENCH,
  assertBuilt,
  type LoadReport,
  runLoad,
  startGoAllowAll,
  writeRequestFile,
} from './authzbench';
import { serializeCheckRequest } from './check-codec';
import { envoyCheckRequest, paidCredentialMinter } from './envoy-request';
import {
  BATCH_HEADER,
  type Batch,
  batchRow,
  CHALLENGE,
  errorsOf,
  GO,
  GRPC_JS,
  NODE_HTTP2,
  ratioLines,
  summarize,
  summaryTable,
  VERIFY_REDIS,
} from './hot-path-report';
import { Child } from './ipc';
import { machineCpuMs, treeCpuUs } from './proc-cpu';
import {
  BENCH_FREE_PATH,
  BENCH_KEY_ID,
  type ServerCommand,
  type ServerEvent,
  type StartServer,
} from './protocol';
import { countKeys, deleteKeys } from './redis-keys';
import { startRedisProcess } from './redis-process';

const USAGE = `usage: npm run bench:hot-path -- [options]
  --calls N         measured calls per closed-loop batch (default 10000; challenge batches: a quarter)
  --warmup N        closed-loop warm-up calls before each measured batch (default 2000)
  --first-warmup N  warm-up calls per target before the first round (default 20000; challenge: a quarter)
  --concurrency C   calls in flight at saturation (default 64)
  --rounds R        rounds over the targets, order alternating (default 2)
  --rate-seconds S  length of each open-loop run at 25 % and 50 % of the peak; 0 skips them (default 3)
  --deadline-ms MS  per-call gRPC deadline (default 1000)
  --conns N         HTTP/2 connections of the load generator (default 1, as one Envoy worker)
  --no-pin          do not pin the servers of the per-check rows to one core
  --node-flags=F    Node flags for every Node server, e.g. the image's
                    "--max-semi-space-size=4 --heap-growing-percent=50" (default: none, V8's defaults)
  --redis-url URL   an existing Redis (default: a private redis-server, pinned off the servers' core when they are)
  --json FILE       also write every figure as JSON to FILE`;

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '10000' },
    'node-flags': { type: 'string', default: '' },
    warmup: { type: 'string', default: '2000' },
    'first-warmup': { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '2' },
    'rate-seconds': { type: 'string', default: '3' },
    'deadline-ms': { type: 'string', default: '1000' },
    conns: { type: 'string', default: '1' },
    'no-pin': { type: 'boolean', default: false },
    'redis-url': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const int = (name: string, value: string | undefined, min: number): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const CALLS = int('calls', args.calls, 1);
const WARMUP = int('warmup', args.warmup, 0);
const FIRST_WARMUP = int('first-warmup', args['first-warmup'], 0);
const CONCURRENCY = int('concurrency', args.concurrency, 1);
const ROUNDS = int('rounds', args.rounds, 1);
const NODE_FLAGS = (args['node-flags'] ?? '').split(' ').filter(Boolean);
const RATE_SECONDS = int('rate-seconds', args['rate-seconds'], 0);
const DEADLINE_MS = int('deadline-ms', args['deadline-ms'], 1);
const CONNS = int('conns', args.conns, 1);
/** Distinct requests in a reusable file (allow-all, free, challenge), sent in turn. */
const POOL = 1000;

// ---------------------------------------------------------------------------------------------------------
// Targets

/** What a target is sent and must answer: 200 (verify: or 503, counted), 402 for a challenge. */
type Kind = 'allow-all' | 'free' | 'verify' | 'challenge';

interface Target {
  name: string;
  kind: Kind;
  pid: number;
  address: string;
  /** Verify targets: Plannt's paid counter (undefined for the Go server). */
  paid?: () => Promise<number>;
  /** Node targets: GC pause so far and the longest since the last call, ms (undefined for the Go server). */
  gc?: () => Promise<{ totalMs: number; maxPauseMs: number }>;
  /** Verify targets with Redis: the key prefix their spends land under. */
  keyPrefix?: string;
  pinned: boolean;
  stop(): Promise<void>;
}

type ServerPeer = Child<ServerCommand, ServerEvent>;

/** The last CPU: the servers of the per-check rows share it (one at a time), everything else floats. */
const PIN_CORE = os.cpus().length - 1;
const canPin = (() => {
  if (args['no-pin'] || os.cpus().length < 2) return false;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Pins every thread of a running process (V8 and libuv threads included) to PIN_CORE. */
function pin(pid: number): void {
  execFileSync('taskset', ['-a', '-cp', String(PIN_CORE), String(pid)], { stdio: 'ignore' });
}

async function startHost(name: string, kind: Kind, cmd: StartServer, pinIt: boolean): Promise<Target> {
  const peer: ServerPeer = new Child(name, 'server-host.js', NODE_FLAGS);
  const ready = await peer.request(cmd, 'ready');
  if (pinIt) pin(ready.pid);
  return {
    name,
    kind,
    pid: ready.pid,
    address: `127.0.0.1:${ready.port}`,
    pinned: pinIt,
    gc: async () => {
      const { stats } = await peer.request({ type: 'stats' }, 'stats');
      return { totalMs: stats.gcMs, maxPauseMs: stats.gcMaxPauseMs };
    },
    ...(cmd.kind === 'plannt' && {
      paid: async () => (await peer.request({ type: 'stats' }, 'stats')).stats.paidRequests ?? 0,
    }),
    ...(cmd.keyPrefix && kind === 'verify' && cmd.spentSet !== 'memory' && { keyPrefix: cmd.keyPrefix }),
    stop: () => peer.stop({ type: 'stop' }, 'stopped'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Requests

interface Files {
  dir: string;
  /** Paid-shaped requests for the allow-all servers (their tokens are never checked). */
  paid: string;
  free: string;
  challenge: string;
  /** Verify batches get a fresh file: every token is single-use. */
  freshPaid(count: number): string;
}

function requestFiles(rootKeyHex: string): Files {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'plannt-hot-path-'));
  const mint = paidCredentialMinter({
    rootKeyHex,
    keyId: BENCH_KEY_ID,
    validUntil: Math.floor(Date.now() / 1000) + 3600, // the route's default token lifetime
  });
  const nowSeconds = Math.floor(Date.now() / 1000);
  const build = (count: number, shape: (i: number) => Parameters<typeof envoyCheckRequest>[0]) =>
    Array.from({ length: count }, (_, i) => serializeCheckRequest(envoyCheckRequest(shape(i))));
  const paidShape = () => ({ authorization: mint().authorization, requestId: randomUUID(), nowSeconds });
  const file = (name: string, requests: Buffer[]) => {
    const f = path.join(dir, name);
    writeRequestFile(f, requests);
    return f;
  };
  let batch = 0;
  return {
    dir,
    paid: file('paid.bin', build(POOL, paidShape)),
    free: file(
      'free.bin',
      build(POOL, () => ({ requestId: randomUUID(), nowSeconds, path: BENCH_FREE_PATH })),
    ),
    // Many agents, not one: each address stays under the per-client challenge limit (10/s by default).
    challenge: file(
      'challenge.bin',
      build(POOL, (i) => ({
        requestId: randomUUID(),
        nowSeconds,
        sourceAddress: `10.9.${i >> 8}.${i & 255}`,
      })),
    ),
    freshPaid: (count) => file(`verify-${batch++}.bin`, build(count, paidShape)),
  };
}

function requestsFor(files: Files, t: Target, count: number): string {
  if (t.kind === 'verify') return files.freshPaid(count);
  return t.kind === 'allow-all' ? files.paid : files[t.kind];
}

// ---------------------------------------------------------------------------------------------------------
// Batches

/**
 * Calls whose answer was not what the target must give: the figures would be meaningless. A 503 from a paid
 * route is counted, not wrong: the spent-set did not answer in time, or a queue near saturation shed the check.
 */
function wrongAnswers(t: Target, r: LoadReport): string | undefined {
  const expected = t.kind === 'challenge' ? '402' : '200';
  const shedable = t.kind === 'verify' || t.kind === 'challenge';
  const wrong = Object.entries(r.byHttpStatus).filter(
    ([status]) => status !== expected && !(shedable && status === '503'),
  );
  return wrong.length
    ? `${t.name}: unexpected answers ${JSON.stringify(Object.fromEntries(wrong))}`
    : undefined;
}

const batches: Batch[] = [];
/** Warm-up calls are not measured, but their verifies are paid and spent like the others. */
const warmups: { target: string; report: LoadReport }[] = [];

const loadBase = (t: Target) => ({
  target: t.address,
  concurrency: CONCURRENCY,
  deadlineMs: DEADLINE_MS,
  conns: CONNS,
});

/** Unmeasured closed-loop calls; their answers are still checked and their spends counted. */
async function warmUp(files: Files, t: Target, calls: number): Promise<void> {
  const warm = await runLoad({ ...loadBase(t), requestsFile: requestsFor(files, t, calls), calls });
  const problem = wrongAnswers(t, warm);
  if (problem) throw new Error(`warm-up: ${problem}`);
  warmups.push({ target: t.name, report: warm });
}

async function batch(files: Files, t: Target, label: string, calls: number, rate?: number): Promise<Batch> {
  const base = loadBase(t);
  if (rate === undefined && WARMUP > 0) await warmUp(files, t, WARMUP);
  const requestsFile = requestsFor(files, t, calls);
  const gc0 = await t.gc?.();
  const cpu0 = treeCpuUs(t.pid);
  const machine0 = machineCpuMs();
  const report = await runLoad({ ...base, requestsFile, calls, ...(rate !== undefined && { rate }) });
  const machine1 = machineCpuMs();
  const cpu1 = treeCpuUs(t.pid);
  const gc1 = await t.gc?.();
  const ownMs = (cpu1 - cpu0 + report.cpuUsPerCall * calls) / 1000;
  const wallMs = (machine1.total - machine0.total) / os.cpus().length;
  const problem = wrongAnswers(t, report);
  if (problem) throw new Error(problem);
  const b: Batch = {
    target: t.name,
    label,
    report,
    serverCpuUsPerCheck: (cpu1 - cpu0) / calls,
    ...(gc0 &&
      gc1 && { gcUsPerCheck: ((gc1.totalMs - gc0.totalMs) * 1000) / calls, maxGcPauseMs: gc1.maxPauseMs }),
    loadAverage: os.loadavg()[0] ?? 0,
    otherCores: Math.max(0, machine1.busy - machine0.busy - ownMs) / wallMs,
  };
  batches.push(b);
  process.stdout.write(`  ${batchRow(b)}\n`);
  return b;
}

const callsFor = (t: Target) => (t.kind === 'challenge' ? Math.ceil(CALLS / 4) : CALLS);

/** Closed-loop rounds over `targets`, the order reversed every other round so drift cancels. */
async function rounds(files: Files, targets: Target[]): Promise<void> {
  // A Node server's CPU per check keeps falling for ~10,000 calls after start (JIT tiers, heap sizing), the Go
  // server's does not: without a long first warm-up the first round overstates every Node/Go ratio.
  if (FIRST_WARMUP > 0) {
    process.stdout.write(`  (first warm-up: ${FIRST_WARMUP} calls per target, not measured)\n`);
    for (const t of targets)
      await warmUp(files, t, t.kind === 'challenge' ? Math.ceil(FIRST_WARMUP / 4) : FIRST_WARMUP);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const t of order) await batch(files, t, `${t.name} #${round}`, callsFor(t));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Redis: the spends really landed, then remove them.

/** Every paid decision left exactly one key; every allowed answer was a paid decision. */
async function checkSpends(redis: Redis, targets: Target[]): Promise<string[]> {
  const lines: string[] = [];
  for (const t of targets) {
    if (t.kind !== 'verify' || !t.paid) continue;
    const mine = [...batches, ...warmups].filter((b) => b.target === t.name);
    const allowed = mine.reduce((n, b) => n + b.report.allowed, 0);
    const errors = mine.reduce((n, b) => n + errorsOf(b.report), 0);
    const paid = await t.paid();
    // A call that timed out at the client may still have been paid at the server.
    if (paid < allowed || paid > allowed + errors)
      throw new Error(
        `${t.name}: plannt_paid_requests_total ${paid}, but ${allowed} allowed and ${errors} errors`,
      );
    let keys = '';
    if (t.keyPrefix) {
      const { count } = await countKeys(redis, t.keyPrefix);
      if (count !== paid)
        throw new Error(`${t.name}: Redis holds ${count} spent keys for ${paid} paid checks`);
      keys = `, ${count} spent keys in Redis`;
    }
    lines.push(`  ${t.name}: ${allowed} allowed, plannt_paid_requests_total ${paid}${keys}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  assertBuilt();
  // Redis runs beside Plannt, not on its core, as in production: sharing the core, each would wait for the
  // other's time slice, and the tail would be the scheduler's.
  const privateRedis = args['redis-url'] ? undefined : await startRedisProcess(canPin ? 0 : undefined);
  const REDIS_URL = args['redis-url'] ?? privateRedis?.url ?? '';
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis is not reachable at ${REDIS_URL}: ${String(err)}`);
  });
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  const runPrefix = `plannt:bench:hot:${process.pid}-${randomBytes(4).toString('hex')}:`;
  const rootKeyHex = randomBytes(32).toString('hex');
  const cpus = os.cpus();
  process.stdout.write(
    `plannt bench: hot path vs allow-all baselines (issue 12)\n` +
      `  node ${process.version}${NODE_FLAGS.length ? ` ${NODE_FLAGS.join(' ')}` : ''}, redis ${redisVersion}, ${cpus.length} × ${cpus[0]?.model ?? '?'}, ` +
      `load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}\n` +
      `  load generator ${path.relative(process.cwd(), AUTHZBENCH)}: ${CONNS} HTTP/2 connection(s), ${CONCURRENCY} in flight, ` +
      `${CALLS} calls per batch (+${WARMUP} warm-up; ${FIRST_WARMUP} first), ${ROUNDS} rounds, deadline ${DEADLINE_MS} ms\n` +
      `  server ${canPin ? `pinned to CPU ${PIN_CORE} with taskset` : 'NOT pinned'}; ` +
      `redis ${privateRedis ? `private${canPin ? ', pinned to CPU 0' : ''}` : REDIS_URL}\n`,
  );

  const files = requestFiles(rootKeyHex);
  const targets: Target[] = [];
  let failure: unknown;
  const out: string[] = [];
  try {
    const plannt = (extra: Partial<StartServer>): StartServer => ({
      type: 'start',
      kind: 'plannt',
      logLevel: 'silent',
      rootKeyHex,
      redisUrl: REDIS_URL,
      keyPrefix: `${runPrefix}${targets.length}:`,
      ...extra,
    });
    const go = await startGoAllowAll(canPin ? PIN_CORE : undefined);
    targets.push({
      name: GO,
      kind: 'allow-all',
      pid: go.pid,
      address: go.address,
      pinned: canPin,
      stop: go.stop,
    });
    targets.push(await startHost(GRPC_JS, 'allow-all', { type: 'start', kind: 'allow-all' }, canPin));
    targets.push(
      await startHost(NODE_HTTP2, 'allow-all', { type: 'start', kind: 'http2-allow-all' }, canPin),
    );
    targets.push(await startHost('plannt free route', 'free', plannt({}), canPin));
    targets.push(await startHost(VERIFY_REDIS, 'verify', plannt({}), canPin));
    targets.push(await startHost('plannt verify (memory)', 'verify', plannt({ spentSet: 'memory' }), canPin));
    targets.push(await startHost(CHALLENGE, 'challenge', plannt({}), canPin));

    process.stdout.write(`\n  ${BATCH_HEADER}\n`);
    await rounds(files, targets);
    if (RATE_SECONDS > 0) {
      for (const t of targets) {
        const peak = summarize(batches, t).checksPerSecond;
        for (const share of [0.25, 0.5]) {
          const rate = Math.max(10, Math.round(peak * share));
          await batch(
            files,
            t,
            `${t.name} @${share * 100}%`,
            Math.max(1, Math.round(rate * RATE_SECONDS)),
            rate,
          );
        }
      }
    }
    out.push('', ...(await checkSpends(redis, targets)));
  } catch (err) {
    failure = err;
  } finally {
    for (const t of targets) await t.stop().catch(() => undefined);
    const deleted = await deleteKeys(redis, runPrefix).catch(() => -1);
    out.push(`  cleanup: deleted ${deleted} Redis keys under ${runPrefix}`);
    rmSync(files.dir, { recursive: true, force: true });
    await redis.quit().catch(() => redis.disconnect());
    await privateRedis?.stop();
  }
  process.stdout.write(`${out.join('\n')}\n`);
  if (failure) throw failure;

  const rows = targets.map((t) => summarize(batches, t));
  process.stdout.write(
    `\n  mean of ${ROUNDS} rounds at saturation (${CONCURRENCY} in flight); open loop at 25 % / 50 % of each target's peak\n` +
      `${summaryTable(rows)}\n\n${ratioLines(batches, rows, ROUNDS).join('\n')}\n` +
      `  load average at the end: ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}\n`,
  );
  if (args.json) {
    const settings = {
      calls: CALLS,
      warmup: WARMUP,
      firstWarmup: FIRST_WARMUP,
      concurrency: CONCURRENCY,
      rounds: ROUNDS,
      conns: CONNS,
    };
    const machine = { node: process.version, redis: redisVersion, cpus: cpus.length, model: cpus[0]?.model };
    writeFileSync(
      args.json,
      `${JSON.stringify({ machine, settings, pinnedCore: canPin ? PIN_CORE : null, rows, batches }, null, 2)}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
