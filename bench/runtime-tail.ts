/**
 * Plannt's verify tail on one or more Node runtimes, each run in fresh processes, the runtimes alternating:
 * what the runtime adds to the p99, apart from a server host that has run many batches (bench/hot-path.ts).
 * A runtime is a Node binary and the flags it runs the server with, e.g. `--node "node --max-semi-space-size=4"`.
 *
 *   npm run build && node dist/bench/runtime-tail.js [--node "/path/to/node [flags…]"]… [--spent-set redis|memory]
 *     [--rate 2900] [--seconds 8] [--runs 3] [--warmup 30000]
 *
 * Each run starts the server host (startApp, dev backend, log level silent) on that runtime, pinned to the last
 * CPU, with a private redis-server on CPU 0; warms it up closed loop (64 in flight), measures the server's CPU
 * per check over the last 20,000 of those calls, then sends `rate` fresh single-use tokens a second for
 * `seconds`, open loop (the Go generator, bench/tools). Reported per run: p50/p99/max, the server's GC pauses
 * (all, and the longest), its RSS at the end, and the CPU time the hypervisor stole meanwhile.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { assertBuilt, runLoad, writeRequestFile } from './authzbench';
import { serializeCheckRequest } from './check-codec';
import { envoyCheckRequest, paidCredentialMinter } from './envoy-request';
import { Child } from './ipc';
import { machineTicks, treeCpuUs } from './proc-cpu';
import { BENCH_KEY_ID, type ServerCommand, type ServerEvent } from './protocol';
import { startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    node: { type: 'string', multiple: true },
    'spent-set': { type: 'string', default: 'redis' },
    rate: { type: 'string', default: '2900' },
    seconds: { type: 'string', default: '8' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '30000' },
  },
});
const positive = (name: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
};
const RATE = positive('rate', args.rate);
const SECONDS = positive('seconds', args.seconds);
const RUNS = positive('runs', args.runs);
const WARMUP = positive('warmup', args.warmup);
const CPU_CALLS = Math.min(20_000, WARMUP);
const SPENT_SET = args['spent-set'];
if (SPENT_SET !== 'redis' && SPENT_SET !== 'memory') throw new Error('--spent-set: redis or memory');
const NODES = (args.node ?? [process.execPath]).map((runtime) => {
  const [execPath = '', ...flags] = runtime.split(' ').filter(Boolean);
  return { execPath, flags };
});
const SERVER_CORE = os.cpus().length - 1;

const labelOf = ({ execPath, flags }: (typeof NODES)[number]) =>
  [execFileSync(execPath, ['--version'], { encoding: 'utf8' }).trim(), ...flags].join(' ');
const ms = (us: number) => (us / 1000).toFixed(2);

async function run(node: (typeof NODES)[number], dir: string, redisUrl: string): Promise<string> {
  const rootKeyHex = randomBytes(32).toString('hex');
  const mint = paidCredentialMinter({
    rootKeyHex,
    keyId: BENCH_KEY_ID,
    validUntil: Math.floor(Date.now() / 1000) + 3600,
  });
  const nowSeconds = Math.floor(Date.now() / 1000);
  let files = 0;
  const freshTokens = (count: number) => {
    const file = path.join(dir, `tokens-${files++}.bin`);
    const requests = Array.from({ length: count }, () =>
      serializeCheckRequest(
        envoyCheckRequest({ authorization: mint().authorization, requestId: randomUUID(), nowSeconds }),
      ),
    );
    writeRequestFile(file, requests);
    return file;
  };
  const host = new Child<ServerCommand, ServerEvent>(
    'server-host',
    'server-host.js',
    node.flags,
    node.execPath,
  );
  try {
    const { port, pid } = await host.request(
      {
        type: 'start',
        kind: 'plannt',
        spentSet: SPENT_SET as 'redis' | 'memory',
        redisUrl,
        keyPrefix: `plannt:bench:tail:${randomUUID().slice(0, 8)}:`,
        rootKeyHex,
      },
      'ready',
    );
    execFileSync('taskset', ['-a', '-cp', String(SERVER_CORE), String(pid)], { stdio: 'ignore' });
    const load = { target: `127.0.0.1:${port}`, concurrency: 64, deadlineMs: 1000, conns: 1 };
    if (WARMUP > CPU_CALLS)
      await runLoad({ ...load, requestsFile: freshTokens(WARMUP - CPU_CALLS), calls: WARMUP - CPU_CALLS });
    const cpuFile = freshTokens(CPU_CALLS);
    const cpu0 = treeCpuUs(pid);
    await runLoad({ ...load, requestsFile: cpuFile, calls: CPU_CALLS });
    const cpuUsPerCheck = (treeCpuUs(pid) - cpu0) / CPU_CALLS;
    const calls = RATE * SECONDS;
    const openFile = freshTokens(calls);
    const before = (await host.request({ type: 'stats' }, 'stats')).stats;
    const machine0 = machineTicks();
    const r = await runLoad({ ...load, requestsFile: openFile, calls, rate: RATE });
    const machine1 = machineTicks();
    const after = (await host.request({ type: 'stats' }, 'stats')).stats;
    const stolen = (100 * (machine1.steal - machine0.steal)) / (machine1.total - machine0.total);
    const statuses = Object.entries(r.byHttpStatus)
      .map(([status, n]) => `${n} × ${status}`)
      .join(', ');
    return (
      `cpu ${cpuUsPerCheck.toFixed(0)} µs/check  p50 ${ms(r.latencyUs.p50)}  p99 ${ms(r.latencyUs.p99)}  ` +
      `max ${ms(r.latencyUs.max)} ms  gc ${(after.gcMs - before.gcMs).toFixed(0)} ms (longest ` +
      `${after.gcMaxPauseMs.toFixed(1)})  rss ${(after.rssBytes / 2 ** 20).toFixed(0)} MB  stolen ` +
      `${stolen.toFixed(0)} %  ${statuses}`
    );
  } finally {
    await host.stop({ type: 'stop' }, 'stopped');
  }
}

async function main(): Promise<void> {
  assertBuilt();
  const versions = NODES.map(labelOf);
  const redis = SPENT_SET === 'redis' ? await startRedisProcess(0) : undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'plannt-bench-tail-'));
  process.stdout.write(
    `verify (${SPENT_SET}) at ${RATE}/s for ${SECONDS} s after ${WARMUP} closed-loop calls; ` +
      `runtimes alternate: ${versions.join(', ')}\n`,
  );
  try {
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 ? [...NODES.keys()].reverse() : [...NODES.keys()];
      for (const n of order) {
        const line = await run(NODES[n] as (typeof NODES)[number], dir, redis?.url ?? '');
        process.stdout.write(`  run ${i + 1}, ${versions[n]}: ${line}\n`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await redis?.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
