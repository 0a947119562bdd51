/**
 * What V8's scavenges keep of objects that die young, per object constructed, from the collector's own
 * counters (`--trace-gc-nvp`, as bench/stream-survival.ts). No server, no socket, one shape at a time:
 * - `writable`, `readable`: node's own. Node 24.15.0 changed `WritableState`'s
 *   `this.onwrite = onwrite.bind(undefined, stream)` to `this.onwrite = (er) => onwrite(stream, er)`, and every
 *   HTTP/2 stream and socket is a Writable; `bound-callback` and `arrow-callback` are that line alone.
 * - `ioredis-pipeline`, `ioredis-command`: what ioredis builds per batch with auto-pipelining, and per command.
 *   A Pipeline defines an accessor (`length`) on each instance; `own-accessor` is that alone.
 *
 *   npm run build && <node> dist/bench/scavenge-survival.js [--objects 200000]
 *
 * Each shape runs in its own process on the Node that runs this script; run it with each runtime to compare.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import Redis, { Command } from 'ioredis';
import Pipeline from 'ioredis/built/Pipeline';
import { type Scavenge, scavengeOf } from './gc-trace';

const BATCH = 50;
const STARTED = 'constructing';

function write(_chunk: unknown, _encoding: string, callback: () => void): void {
  callback();
}
function onwrite(owner: object, er?: Error): boolean {
  return er === undefined && owner !== undefined;
}
/** Node ≤ 24.14's WritableState, reduced to the line in question. */
class BoundCallback {
  onwrite: (er?: Error) => boolean;
  constructor(readonly owner: object) {
    this.onwrite = onwrite.bind(undefined, owner);
  }
}
/** Node ≥ 24.15's. */
class ArrowCallback {
  onwrite: (er?: Error) => boolean;
  constructor(readonly owner: object) {
    this.onwrite = (er) => onwrite(owner, er);
  }
}

/** An object with an accessor of its own, as ioredis's Pipeline has. */
class OwnAccessor {
  readonly queue: unknown[] = [];
  constructor() {
    const queue = this.queue;
    Object.defineProperty(this, 'length', { get: () => queue.length });
  }
}

// Never connects: constructing a Pipeline only reads the client's options and scripts.
let redis: Redis | undefined;
const client = () => {
  redis ??= new Redis({ lazyConnect: true });
  return redis;
};

const SHAPES = {
  writable: () => new Writable({ write }),
  readable: () => new Readable({ read() {} }),
  'bound-callback': () => new BoundCallback({}),
  'arrow-callback': () => new ArrowCallback({}),
  'ioredis-pipeline': () => new Pipeline(client()).promise.catch(() => {}),
  'ioredis-command': () => new Command('set', ['key', '1', 'NX']).promise.catch(() => {}),
  'own-accessor': () => new OwnAccessor(),
} as const;
type Shape = keyof typeof SHAPES;

/** Child: constructs `objects` of a shape, `BATCH` a turn so the loop turns as a server's does, keeping none. */
function make(shape: Shape, objects: number): void {
  const construct = SHAPES[shape];
  // What loading modules and starting left in the young generation is not the shape's: count from here.
  process.stdout.write(`${STARTED}\n`);
  let left = objects;
  const batch = () => {
    for (let i = 0; i < BATCH; i++) construct();
    left -= BATCH;
    if (left > 0) setImmediate(batch);
  };
  batch();
}

async function measure(shape: Shape, objects: number) {
  const child = spawn(
    process.execPath,
    ['--trace-gc-nvp', __filename, '--make', shape, '--objects', `${objects}`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const scavenges: Scavenge[] = [];
  let started = false;
  createInterface({ input: child.stdout }).on('line', (line) => {
    started ||= line === STARTED;
    const s = scavengeOf(line);
    if (s && started) scavenges.push(s);
  });
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`the ${shape} run exited with ${code}`);
  const sum = (f: (s: Scavenge) => number) => scavenges.reduce((t, s) => t + f(s), 0);
  return {
    shape,
    scavenges: scavenges.length,
    allocatedMb: (sum((s) => s.allocated) / 2 ** 20).toFixed(1),
    survivedMb: (sum((s) => s.survived) / 2 ** 20).toFixed(2),
    survivedPerObjectBytes: (sum((s) => s.survived) / objects).toFixed(1),
    promotedMb: (sum((s) => s.promoted) / 2 ** 20).toFixed(2),
  };
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: { make: { type: 'string' }, objects: { type: 'string', default: '200000' } },
  });
  const objects = Number(args.objects);
  if (!Number.isInteger(objects) || objects <= 0) throw new Error('--objects: a positive integer');
  if (args.make !== undefined) {
    if (!(args.make in SHAPES)) throw new Error(`--make: one of ${Object.keys(SHAPES).join(', ')}`);
    return make(args.make as Shape, objects);
  }
  console.log(`node ${process.version}, ${objects} objects a shape, ${BATCH} a turn`);
  for (const shape of Object.keys(SHAPES) as Shape[]) {
    const r = await measure(shape, objects);
    console.log(
      `  ${r.shape.padEnd(15)} ${String(r.scavenges).padStart(4)} scavenges  allocated ${r.allocatedMb} MB  ` +
        `survived ${r.survivedMb} MB (${r.survivedPerObjectBytes} B an object)  promoted ${r.promotedMb} MB`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
