/**
 * RSS under sustained load, and after it: a soak of Plannt at a fixed request rate with a realistic mix.
 *
 *   npm run build && node dist/bench/soak.js [--minutes 10] [--rate 300] [--json FILE]
 *
 * Plannt runs in its own process (bench/server-host.js: startApp, dev invoice backend, Redis spent-set on a
 * private redis-server, log level info to /dev/null); the load generator (bench/paths-load.js) in another,
 * open loop at --rate with the mix --mix (verify, garbage, forged, challenge weights). Plannt's RSS is sampled
 * every --sample-s seconds during the load and --idle-s seconds after it. --server-flags passes Node flags to
 * the Plannt process (e.g. "--max-semi-space-size=2"). Growth is the least-squares slope of
 * RSS over the second half of the load, when every bounded cache has had time to fill.
 * Targets: RSS <= 120 MB under load; no growth over the soak.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Child, delay } from './ipc';
import type { PathsLoadCommand, PathsLoadEvent, PathsResult } from './paths-load';
import { BENCH_KEY_ID, type ServerCommand, type ServerEvent, type ServerStats } from './protocol';
import { startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '300' },
    mix: { type: 'string', default: 'verify=70,garbage=15,forged=10,challenge=5' },
    'sample-s': { type: 'string', default: '10' },
    'idle-s': { type: 'string', default: '30' },
    'server-flags': { type: 'string', default: '' },
    json: { type: 'string' },
  },
});
const MINUTES = Number(args.minutes);
const RATE = Number(args.rate);
const SAMPLE_MS = Number(args['sample-s']) * 1000;
const IDLE_MS = Number(args['idle-s']) * 1000;
const MIX = Object.fromEntries(
  (args.mix ?? '').split(',').map((pair) => {
    const [k = '', v = '0'] = pair.split('=');
    return [k.trim(), Number(v)];
  }),
);
const MB = 1024 * 1024;
const RSS_TARGET_MB = 120;

interface Sample {
  atS: number;
  phase: 'before' | 'load' | 'idle';
  rssMb: number;
  redisMb: number;
}

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const num = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const redis = await startRedisProcess();
  const rootKeyHex = randomBytes(32).toString('hex');
  const serverFlags = (args['server-flags'] ?? '').split(' ').filter(Boolean);
  const server = new Child<ServerCommand, ServerEvent>('plannt', 'server-host.js', serverFlags);
  const load = new Child<PathsLoadCommand, PathsLoadEvent>('load', 'paths-load.js');
  const samples: Sample[] = [];
  const t0 = Date.now();
  const sample = async (phase: Sample['phase']) => {
    const { stats } = (await server.request({ type: 'stats' }, 'stats')) as { stats: ServerStats };
    const used = Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))?.[1] ?? 0);
    const s = { atS: (Date.now() - t0) / 1000, phase, rssMb: stats.rssBytes / MB, redisMb: used / MB };
    samples.push(s);
    process.stdout.write(
      `  ${s.atS.toFixed(0).padStart(5)} s  ${phase.padEnd(6)}  plannt RSS ${s.rssMb.toFixed(1).padStart(6)} MB   redis ${s.redisMb.toFixed(1).padStart(6)} MB\n`,
    );
  };
  let result: PathsResult | undefined;
  try {
    const ready = await server.request(
      {
        type: 'start',
        kind: 'plannt',
        logLevel: 'info',
        redisUrl: redis.url,
        keyPrefix: 'plannt:spent:',
        rootKeyHex,
      },
      'ready',
    );
    await load.next('ready');
    process.stdout.write(
      `plannt soak: ${MINUTES} min at ${RATE}/s, mix ${JSON.stringify(MIX)}, server flags [${serverFlags.join(' ')}]; ` +
        `plannt pid ${ready.pid}, ` +
        `load pid ${load.pid}, redis pid ${redis.pid}\n`,
    );
    await sample('before');
    const running = load.request(
      {
        type: 'run',
        target: `127.0.0.1:${ready.port}`,
        mix: MIX,
        tokens: { rootKeyHex, keyId: BENCH_KEY_ID, validUntil: Math.floor(Date.now() / 1000) + 3600 },
        durationMs: MINUTES * 60_000,
        concurrency: 64,
        ratePerSecond: RATE,
        deadlineMs: 2000,
      },
      'result',
    );
    let done = false;
    void running.finally(() => {
      done = true;
    });
    while (!done) {
      await Promise.race([delay(SAMPLE_MS), running.catch(() => undefined)]);
      if (!done) await sample('load');
    }
    result = (await running).result;
    await sample('load');
    const idleUntil = Date.now() + IDLE_MS;
    while (Date.now() < idleUntil) {
      await delay(Math.min(SAMPLE_MS, idleUntil - Date.now()));
      await sample('idle');
    }
  } finally {
    await load.stop({ type: 'exit' }, 'closed');
    await server.stop({ type: 'stop' }, 'stopped');
    await redis.stop();
  }

  const underLoad = samples.filter((s) => s.phase === 'load');
  const secondHalf = underLoad.slice(Math.floor(underLoad.length / 2));
  const growthMbPerMin = slope(secondHalf.map((s) => ({ x: s.atS / 60, y: s.rssMb }))) || 0;
  const maxLoad = Math.max(...underLoad.map((s) => s.rssMb));
  const before = samples.find((s) => s.phase === 'before')?.rssMb ?? 0;
  const endLoad = underLoad[underLoad.length - 1]?.rssMb ?? 0;
  const afterIdle = samples[samples.length - 1]?.rssMb ?? 0;
  const r = result as PathsResult;
  const lines = [
    '',
    `  requests ${r.requests} in ${(r.elapsedMs / 1000).toFixed(0)} s = ${r.throughput.toFixed(0)}/s; outcomes ${JSON.stringify(r.outcomes)}`,
    ...(r.firstErrors ? [`  first error of each kind: ${JSON.stringify(r.firstErrors)}`] : []),
    `  latency p50 ${(r.latency.p50 / 1000).toFixed(2)} ms, p99 ${(r.latency.p99 / 1000).toFixed(2)} ms, max ${(r.latency.max / 1000).toFixed(1)} ms`,
    `  plannt RSS: before load ${before.toFixed(1)} MB, max under load ${maxLoad.toFixed(1)} MB (target <= ${RSS_TARGET_MB}: ${maxLoad <= RSS_TARGET_MB ? 'met' : 'MISSED'}), ` +
      `end of load ${endLoad.toFixed(1)} MB, after ${IDLE_MS / 1000} s idle ${afterIdle.toFixed(1)} MB`,
    `  growth over the second half of the load: ${growthMbPerMin.toFixed(2)} MB/min ` +
      `(${(growthMbPerMin * (MINUTES / 2)).toFixed(1)} MB over ${(MINUTES / 2).toFixed(1)} min)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (args.json)
    writeFileSync(args.json, `${JSON.stringify({ samples, result, growthMbPerMin }, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
