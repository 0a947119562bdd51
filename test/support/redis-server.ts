/**
 * A private redis-server on a free loopback port that a test may kill and start again on the same port
 * (never the shared Redis on 6379). Persistent by default, with the AOF fsynced on every write, as a
 * spent-set Redis must be: a restart that forgot spent tokens would let them be replayed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './redis-procs';

export interface RedisServer {
  port: number;
  url: string;
  pid(): number | undefined;
  /** SIGKILL, as a crash or an evicted pod; resolves once the process has exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it answers PING. */
  start(): Promise<void>;
  /** redis-cli against this server; returns stdout. */
  cli(...args: string[]): string;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  persistent?: boolean;
  /** Extra `--name value` arguments. */
  args?: string[];
}

function requireRedis(): void {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server is needed for this test: apt-get install -y redis-server');
  }
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  requireRedis();
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-redis-'));
  const port = await freePort();
  const persistence =
    options.persistent === false
      ? ['--save', '', '--appendonly', 'no']
      : ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
  let child: ChildProcess | undefined;

  const cli = (...args: string[]) =>
    execFileSync('redis-cli', ['-p', String(port), ...args], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });

  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...persistence, ...(options.args ?? [])],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200; i++) {
      try {
        if (cli('PING').trim() === 'PONG') return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on port ${port} did not start`);
  };

  const kill = () =>
    new Promise<void>((resolve) => {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid,
    kill,
    start,
    cli,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
