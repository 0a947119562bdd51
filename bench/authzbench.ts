/**
 * The Go tools of the hot-path bench (bench/tools, built into bin/authzbench by bench/tools/build.sh): the
 * allow-all ext_authz server, the load generator, and the length-prefixed request file it reads.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const AUTHZBENCH = path.resolve(__dirname, '../../bin/authzbench');

export function assertBuilt(): void {
  if (!existsSync(AUTHZBENCH)) throw new Error(`${AUTHZBENCH} is missing: run bench/tools/build.sh`);
}

/** Each record: a big-endian uint32 length, then one serialised CheckRequest. */
export function writeRequestFile(file: string, requests: readonly Buffer[]): void {
  const parts: Buffer[] = [];
  for (const r of requests) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(r.length);
    parts.push(length, r);
  }
  writeFileSync(file, Buffer.concat(parts));
}

export interface GoServer {
  pid: number;
  address: string;
  stop(): Promise<void>;
}

/** Starts `authzbench serve`, under `taskset -c <core>` when a core is given (Go then sizes GOMAXPROCS to it). */
export async function startGoAllowAll(core?: number): Promise<GoServer> {
  const argv = [AUTHZBENCH, 'serve', '-listen', '127.0.0.1:0'];
  const child: ChildProcess =
    core === undefined
      ? spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn('taskset', ['-c', String(core), ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stdout = child.stdout;
  if (!stdout) throw new Error('authzbench serve: no stdout');
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`authzbench serve exited (${code})`)));
    createInterface({ input: stdout }).once('line', resolve);
  });
  const { port, pid } = JSON.parse(line) as { port: number; pid: number };
  return {
    pid,
    address: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface LoadOptions {
  target: string;
  requestsFile: string;
  calls: number;
  /** Closed loop: calls in flight. */
  concurrency: number;
  /** Open loop, calls per second; closed loop when absent. */
  rate?: number;
  deadlineMs: number;
  conns: number;
}

/** The JSON `authzbench load` prints (bench/tools/load.go, type report). */
export interface LoadReport {
  calls: number;
  mode: 'closed' | 'open';
  /** Open loop: the rate asked for. */
  rate?: number;
  ok: number;
  allowed: number;
  denied: number;
  byHttpStatus: Record<string, number>;
  grpcErrors: Record<string, number>;
  firstError?: string;
  elapsedMs: number;
  checksPerSecond: number;
  latencyUs: { p50: number; p90: number; p99: number; max: number; mean: number };
  cpuUsPerCall: number;
  maxInFlight: number;
}

export function runLoad(o: LoadOptions): Promise<LoadReport> {
  const args = ['load', '-target', o.target, '-requests', o.requestsFile, '-calls', String(o.calls)];
  args.push(
    '-concurrency',
    String(o.concurrency),
    '-deadline',
    `${o.deadlineMs}ms`,
    '-conns',
    String(o.conns),
  );
  if (o.rate !== undefined) args.push('-rate', String(o.rate));
  return new Promise((resolve, reject) =>
    execFile(AUTHZBENCH, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`authzbench load: ${stderr || err.message}`)) : resolve(JSON.parse(stdout)),
    ),
  );
}
