/**
 * What V8's scavenges keep of a bare node:http2 server's streams, from the collector's own counters
 * (`--trace-gc-nvp`), not from FinalizationRegistry or the sampling heap profiler: both hold their targets
 * through scavenges themselves. No gRPC library and no Plannt: the floor under Plannt's Check.
 *
 *   npm run build && node dist/bench/stream-survival.js [--rounds 2] [--calls 16000] [--rate 2000]
 *
 * Each server runs in its own process under `--trace-gc-nvp`; h2load drives it open loop on 2 connections.
 * The answers: `headers` (headers with END_STREAM, the body never read), `read-headers` (the body read,
 * then headers alone), `body` (headers, then a 5-byte body), `trailers` (headers, then trailers) and `grpc`
 * (headers, a 5-byte message, trailers, as a gRPC server answers). Variants alternate, round after round.
 * Run it with another Node to compare runtimes: every server runs on the Node that runs this script.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type Scavenge, scavengeOf } from './gc-trace';
import { assertH2load, runH2load, writeGrpcBody } from './h2load';

const VARIANTS = ['headers', 'read-headers', 'body', 'trailers', 'grpc'] as const;
type Variant = (typeof VARIANTS)[number];
const CONNECTIONS = 2;
const EMPTY_MESSAGE = Buffer.alloc(5);

function serve(variant: Variant): void {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    if (variant === 'headers') {
      stream.respond({ ':status': 200 }, { endStream: true });
      return;
    }
    stream.resume();
    stream.on('end', () => {
      if (variant === 'read-headers') {
        stream.respond({ ':status': 200 }, { endStream: true });
        return;
      }
      if (variant === 'body') {
        stream.respond({ ':status': 200 });
        stream.end(EMPTY_MESSAGE);
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      // `trailers`: no message between the headers and the trailers.
      stream.end(variant === 'grpc' ? EMPTY_MESSAGE : undefined);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address?.port })}\n`);
  });
}

async function measure(variant: Variant, bodyFile: string, calls: number, rate: number) {
  const child: ChildProcess = spawn(process.execPath, ['--trace-gc-nvp', __filename, '--serve', variant], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const scavenges: Scavenge[] = [];
  let counting = false;
  const exited = new Promise((r) => child.once('exit', r));
  const port = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (line.startsWith('{')) resolve(Number((JSON.parse(line) as { port: number }).port));
      const s = scavengeOf(line);
      if (s && counting) scavenges.push(s);
    });
    void exited.then(() => reject(new Error(`the ${variant} server exited before it listened`)));
  });
  try {
    const load = async (n: number) =>
      runH2load({
        port: await port,
        bodyFile,
        calls: n,
        connections: CONNECTIONS,
        streamsPerConnection: 16,
        ratePerConnection: rate / CONNECTIONS,
        path: '/bench',
      });
    await load(calls / 2);
    counting = true;
    await load(calls);
    counting = false;
  } finally {
    child.kill();
    await exited;
  }
  const sum = (f: (s: Scavenge) => number) => scavenges.reduce((t, s) => t + f(s), 0);
  const mb = (bytes: number) => (bytes / scavenges.length / 2 ** 20).toFixed(2);
  return {
    variant,
    scavenges: scavenges.length,
    pauseMs: (sum((s) => s.pauseMs) / scavenges.length).toFixed(1),
    allocatedMb: mb(sum((s) => s.allocated)),
    survivedMb: mb(sum((s) => s.survived)),
    promotedMb: mb(sum((s) => s.promoted)),
    survivedPercent: ((100 * sum((s) => s.survived)) / sum((s) => s.allocated)).toFixed(0),
    survivedPerCallKb: (sum((s) => s.survived) / calls / 1024).toFixed(2),
  };
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      serve: { type: 'string' },
      rounds: { type: 'string', default: '2' },
      calls: { type: 'string', default: '16000' },
      rate: { type: 'string', default: '2000' },
    },
  });
  if (args.serve !== undefined) {
    if (!VARIANTS.includes(args.serve as Variant)) throw new Error(`--serve: one of ${VARIANTS.join(', ')}`);
    return serve(args.serve as Variant);
  }
  assertH2load();
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-bench-survival-'));
  try {
    const bodyFile = path.join(dir, 'body.bin');
    writeGrpcBody(bodyFile, Buffer.from([0x0a, 0x00]));
    process.stdout.write(
      `plannt bench: stream survival (node:http2 alone, ${args.calls} calls at ${args.rate}/s on ${CONNECTIONS} connections, per scavenge)\n`,
    );
    for (let round = 1; round <= Number(args.rounds); round++)
      for (const variant of round % 2 ? VARIANTS : [...VARIANTS].reverse()) {
        const r = await measure(variant, bodyFile, Number(args.calls), Number(args.rate));
        process.stdout.write(
          `  round ${round}, ${r.variant.padEnd(12)} ${r.scavenges} scavenges  pause ${r.pauseMs} ms  allocated ${r.allocatedMb} MB  survived ${r.survivedMb} MB (${r.survivedPercent} %, ${r.survivedPerCallKb} KB a call)  promoted ${r.promotedMb} MB\n`,
        );
      }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
