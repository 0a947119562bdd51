/**
 * Every decision path, side by side in one run, on the same stack: verify (valid token, real Redis) vs the
 * allow-all ceiling, the rejection path (garbage, and forged tokens that cost the whole HMAC chain), and the
 * challenge path with the dev backend vs the dev backend's raw invoice creation.
 *
 *   npm run build && node dist/bench/paths.js [--requests 10000] [--rounds 2] [--json FILE]
 *
 * Processes: this parent only orchestrates. Plannt (bench/server-host.js: startApp, dev invoice backend,
 * Redis spent-set on a private redis-server, log level silent) and the allow-all ceiling each run in their own
 * process; the load generator (bench/paths-load.js) in another, one HTTP/2 connection, C calls in flight,
 * every request built and serialised before the clock starts. Raw invoice creation runs in the load process,
 * with nothing else going on. Rounds alternate the order of the phases so drift cancels. Afterwards, verify
 * runs open loop at half its peak for the latency target (p99 <= 1 ms).
 * --cpu-prof DIR writes a V8 CPU profile of the Plannt process (summarise it with profile-summary.js);
 * --only verify (or bundle, pass, garbage, forged, challenge, allow-all, raw) runs a subset of the phases;
 * bundle and pass verify the first use of a 10-use token (the Lua script) and a time pass (no Redis call).
 * --server-flags=... passes Node flags to the Plannt process (e.g. --max-semi-space-size=2).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Child } from './ipc';
import type { PathsLoadCommand, PathsLoadEvent, PathsResult, RequestKind } from './paths-load';
import { BENCH_KEY_ID, type ServerCommand, type ServerEvent, type ServerStats } from './protocol';
import { startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '10000' },
    'challenge-requests': { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '2' },
    'rate-seconds': { type: 'string', default: '5' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'server-flags': { type: 'string', default: '' },
    json: { type: 'string' },
  },
});
const REQUESTS = Number(args.requests);
const CHALLENGES = Number(args['challenge-requests']);
const WARMUP = Number(args.warmup);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
const RATE_SECONDS = Number(args['rate-seconds']);

type Server = Child<ServerCommand, ServerEvent>;
type Load = Child<PathsLoadCommand, PathsLoadEvent>;

interface Phase {
  name: string;
  target: 'plannt' | 'allow-all' | 'raw';
  kind?: RequestKind;
  count: number;
}

interface Measured {
  name: string;
  round: number;
  result: PathsResult;
  /** Server process CPU per request, µs (raw: the load process's own CPU). */
  cpuUs: number;
  /** The whole machine's busy cores during the phase, minus the server and the load generator. */
  otherCores: number;
}

function busyMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t;
    busy += t - c.times.idle;
  }
  return { busy, total };
}

async function cpuOf(server: Server): Promise<number> {
  const { stats } = (await server.request({ type: 'stats' }, 'stats')) as { stats: ServerStats };
  return stats.cpuUserUs + stats.cpuSystemUs;
}

const ms = (us: number) => (us / 1000).toFixed(2);

async function main(): Promise<void> {
  const redis = await startRedisProcess();
  const rootKeyHex = randomBytes(32).toString('hex');
  const profileDir = args['cpu-prof'];
  const plannt: Server = new Child('plannt', 'server-host.js', [
    ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
    ...(args['server-flags'] ?? '').split(' ').filter(Boolean),
  ]);
  const allowAll: Server = new Child('allow-all', 'server-host.js');
  const load: Load = new Child('load', 'paths-load.js');
  const measured: Measured[] = [];
  const tokens = () => ({
    rootKeyHex,
    keyId: BENCH_KEY_ID,
    validUntil: Math.floor(Date.now() / 1000) + 3600,
  });
  try {
    const p = await plannt.request(
      {
        type: 'start',
        kind: 'plannt',
        logLevel: 'silent',
        redisUrl: redis.url,
        keyPrefix: 'plannt:spent:',
        rootKeyHex,
      },
      'ready',
    );
    const a = await allowAll.request({ type: 'start', kind: 'allow-all' }, 'ready');
    await load.next('ready');
    const cpus = os.cpus();
    process.stdout.write(
      `plannt bench: decision paths side by side (${cpus.length} × ${cpus[0]?.model}, node ${process.version})\n` +
        `  pids: plannt ${p.pid}, allow-all ${a.pid}, load ${load.pid}, redis ${redis.pid}; C = ${CONCURRENCY}\n\n` +
        `  ${'phase'.padEnd(24)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(8)} ${'srv CPU µs/req'.padStart(15)} ${'other cores'.padStart(12)}  outcomes\n`,
    );
    const targets = { plannt: `127.0.0.1:${p.port}`, 'allow-all': `127.0.0.1:${a.port}` };
    const phases: Phase[] = [
      { name: 'verify (redis)', target: 'plannt', kind: 'verify', count: REQUESTS },
      { name: 'allow-all ceiling', target: 'allow-all', kind: 'verify', count: REQUESTS },
      { name: 'verify bundle (script)', target: 'plannt', kind: 'bundle', count: REQUESTS },
      { name: 'verify pass (no redis)', target: 'plannt', kind: 'pass', count: REQUESTS },
      { name: 'reject garbage', target: 'plannt', kind: 'garbage', count: REQUESTS },
      { name: 'reject forged', target: 'plannt', kind: 'forged', count: REQUESTS },
      { name: 'challenge (dev)', target: 'plannt', kind: 'challenge', count: CHALLENGES },
      { name: 'raw dev createInvoice', target: 'raw', count: CHALLENGES },
    ];
    const runPhase = async (phase: Phase, round: number, ratePerSecond?: number) => {
      const server = phase.target === 'allow-all' ? allowAll : plannt;
      if (phase.target !== 'raw' && WARMUP > 0 && ratePerSecond === undefined) {
        await load.request(
          {
            type: 'run',
            target: targets[phase.target],
            mix: { [phase.kind ?? 'verify']: 1 },
            tokens: tokens(),
            count: Math.min(WARMUP, phase.count),
            concurrency: CONCURRENCY,
            deadlineMs: 5000,
          },
          'result',
        );
      }
      const cpu0 = phase.target === 'raw' ? 0 : await cpuOf(server);
      const sys0 = busyMs();
      const { result } =
        phase.target === 'raw'
          ? await load.request({ type: 'raw-invoices', count: phase.count, concurrency: 1 }, 'result')
          : await load.request(
              {
                type: 'run',
                target: targets[phase.target],
                mix: { [phase.kind ?? 'verify']: 1 },
                tokens: tokens(),
                count: phase.count,
                concurrency: CONCURRENCY,
                deadlineMs: 5000,
                ...(ratePerSecond !== undefined && { ratePerSecond }),
              },
              'result',
            );
      const sys1 = busyMs();
      const serverCpu = phase.target === 'raw' ? 0 : (await cpuOf(server)) - cpu0;
      const wallMs = (sys1.total - sys0.total) / os.cpus().length;
      const own = (serverCpu + result.cpuUs) / 1000;
      const m: Measured = {
        name: ratePerSecond === undefined ? phase.name : `${phase.name} @${ratePerSecond}/s`,
        round,
        result,
        cpuUs: (phase.target === 'raw' ? result.cpuUs : serverCpu) / result.requests,
        otherCores: Math.max(0, sys1.busy - sys0.busy - own) / wallMs,
      };
      measured.push(m);
      process.stdout.write(
        `  ${`${m.name}${ratePerSecond === undefined ? ` #${round}` : ''}`.padEnd(24)} ${result.throughput.toFixed(0).padStart(7)} ` +
          `${ms(result.latency.p50).padStart(7)} ${ms(result.latency.p99).padStart(8)} ${m.cpuUs.toFixed(1).padStart(15)} ` +
          `${m.otherCores.toFixed(2).padStart(12)}  ${JSON.stringify(result.outcomes)}\n`,
      );
      return m;
    };
    // --only verify,garbage: a subset of the phases (by kind or target), e.g. for a CPU profile of one path.
    const only = args.only?.split(',');
    const selected = only
      ? phases.filter((ph) => only.includes(ph.kind ?? ph.target) || only.includes(ph.target))
      : phases;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const phase of round % 2 === 1 ? selected : [...selected].reverse()) await runPhase(phase, round);
    }
    const verifyPeak = mean(
      measured.filter((m) => m.name === 'verify (redis)').map((m) => m.result.throughput),
    );
    const half = Math.max(100, Math.round(verifyPeak / 2 / 50) * 50);
    if (RATE_SECONDS > 0) {
      await runPhase({ ...phases[0], count: half * RATE_SECONDS } as Phase, 0, half);
      await runPhase({ ...phases[1], count: half * RATE_SECONDS } as Phase, 0, half);
    }
  } finally {
    await load.stop({ type: 'exit' }, 'closed');
    await plannt.stop({ type: 'stop' }, 'stopped');
    await allowAll.stop({ type: 'stop' }, 'stopped');
    await redis.stop();
  }

  const by = (name: string) => measured.filter((m) => m.name === name && m.round > 0);
  const tput = (name: string) => mean(by(name).map((m) => m.result.throughput));
  const cpu = (name: string) => mean(by(name).map((m) => m.cpuUs));
  const verify = tput('verify (redis)');
  const ceiling = tput('allow-all ceiling');
  const raw = tput('raw dev createInvoice');
  const challenge = tput('challenge (dev)');
  const open = measured.find((m) => m.round === 0 && m.name.startsWith('verify'));
  const has = (name: string) => by(name).length > 0;
  const lines = [
    '',
    ...(has('verify (redis)') && has('allow-all ceiling')
      ? [
          `  verify / allow-all throughput:       ${(verify / ceiling).toFixed(3)} (${verify.toFixed(0)} / ${ceiling.toFixed(0)} req/s; target >= 0.85: ${verify / ceiling >= 0.85 ? 'met' : 'MISSED'})`,
          `  verify server CPU / allow-all:       ${(cpu('verify (redis)') / cpu('allow-all ceiling')).toFixed(3)} (${cpu('verify (redis)').toFixed(0)} / ${cpu('allow-all ceiling').toFixed(0)} µs per request)`,
        ]
      : []),
    ...(has('verify bundle (script)') && has('verify (redis)')
      ? [
          `  verify bundle / single-use:          ${(tput('verify bundle (script)') / verify).toFixed(3)} throughput (${tput('verify bundle (script)').toFixed(0)} / ${verify.toFixed(0)} req/s), server CPU ${cpu('verify bundle (script)').toFixed(0)} vs ${cpu('verify (redis)').toFixed(0)} µs`,
        ]
      : []),
    ...(has('verify pass (no redis)') && has('verify (redis)')
      ? [
          `  verify pass / single-use:            ${(tput('verify pass (no redis)') / verify).toFixed(3)} throughput (${tput('verify pass (no redis)').toFixed(0)} / ${verify.toFixed(0)} req/s), server CPU ${cpu('verify pass (no redis)').toFixed(0)} µs`,
        ]
      : []),
    ...(has('reject garbage') && has('verify (redis)')
      ? [
          `  reject garbage / verify throughput:  ${(tput('reject garbage') / verify).toFixed(3)} (server CPU ${cpu('reject garbage').toFixed(0)} vs ${cpu('verify (redis)').toFixed(0)} µs; target >= 1: ${tput('reject garbage') >= verify ? 'met' : 'MISSED'})`,
        ]
      : []),
    ...(has('reject forged') && has('verify (redis)')
      ? [
          `  reject forged / verify throughput:   ${(tput('reject forged') / verify).toFixed(3)} (server CPU ${cpu('reject forged').toFixed(0)} µs)`,
        ]
      : []),
    ...(has('challenge (dev)') && has('raw dev createInvoice')
      ? [
          `  challenge (dev) vs raw createInvoice: ${challenge.toFixed(0)} vs ${raw.toFixed(0)} per s; server CPU ${cpu('challenge (dev)').toFixed(0)} vs ${cpu('raw dev createInvoice').toFixed(0)} µs ` +
            `= overhead ${((cpu('challenge (dev)') / cpu('raw dev createInvoice') - 1) * 100).toFixed(0)}% (target <= 10%)`,
        ]
      : []),
    ...(open
      ? [
          `  verify open loop @${open.result.throughput.toFixed(0)}/s (half the peak): p50 ${ms(open.result.latency.p50)} ms, p99 ${ms(open.result.latency.p99)} ms (target <= 1 ms: ${open.result.latency.p99 <= 1000 ? 'met' : 'MISSED'})`,
        ]
      : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ measured }, null, 2)}\n`);
}

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / (xs.length || 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
