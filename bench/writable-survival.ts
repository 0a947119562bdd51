/**
 * What V8's scavenges keep of objects that die young, per object constructed, from the collector's own
 * counters (`--trace-gc-nvp`, as bench/stream-survival.ts). No server, no socket: node's own `Writable` and
 * `Readable`, and two stand-ins that differ only in how the constructor binds its callback — Node 24.15.0
 * changed `WritableState`'s `this.onwrite = onwrite.bind(undefined, stream)` to
 * `this.onwrite = (er) => onwrite(stream, er)`, and every HTTP/2 stream and socket is a Writable.
 *
 *   npm run build && <node> dist/bench/writable-survival.js [--objects 200000]
 *
 * Each shape runs in its own process on the Node that runs this script; run it with each runtime to compare.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { type Scavenge, scavengeOf } from './gc-trace';

const BATCH = 50;

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

const SHAPES = {
  writable: () => new Writable({ write }),
  readable: () => new Readable({ read() {} }),
  'bound-callback': () => new BoundCallback({}),
  'arrow-callback': () => new ArrowCallback({}),
} as const;
type Shape = keyof typeof SHAPES;

/** Child: constructs `objects` of a shape, `BATCH` a turn so the loop turns as a server's does, keeping none. */
function make(shape: Shape, objects: number): void {
  const construct = SHAPES[shape];
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
  createInterface({ input: child.stdout }).on('line', (line) => {
    const s = scavengeOf(line);
    if (s) scavenges.push(s);
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
