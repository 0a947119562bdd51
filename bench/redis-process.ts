/** A private redis-server on a free loopback port for a bench, so the shared Redis is never filled or stopped. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';

export interface RedisProcess {
  url: string;
  pid: number;
  client: Redis;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** `core`: run it on that CPU only (taskset), off the core a measured server has. */
export async function startRedisProcess(core?: number): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-bench-redis-'));
  const argv = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ];
  const child: ChildProcess =
    core === undefined
      ? spawn('redis-server', argv, { stdio: 'ignore' })
      : spawn('taskset', ['-c', String(core), 'redis-server', ...argv], { stdio: 'ignore' });
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) =>
      reject(new Error(`cannot run redis-server (apt-get install -y redis-server): ${err.message}`)),
    ),
  );
  const url = `redis://127.0.0.1:${port}`;
  let client: Redis | undefined;
  for (let i = 0; !client; i++) {
    const attempt = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    attempt.on('error', () => {});
    const ok = await Promise.race([
      attempt.connect().then(
        () => true,
        () => false,
      ),
      spawnError,
    ]);
    if (ok) client = attempt;
    else {
      attempt.disconnect();
      if (i > 100) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const connected = client;
  return {
    url,
    pid: child.pid ?? -1,
    client: connected,
    async stop() {
      connected.disconnect();
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
