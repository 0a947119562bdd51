/** Real redis-server processes on loopback for Sentinel and Cluster tests, torn down by PID. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface RedisProcs {
  ports: number[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPing(port: number, sentinel = false): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const out = execFileSync('redis-cli', ['-p', String(port), 'PING'], {
        encoding: 'utf8',
        timeout: 1000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      if (out.trim() === 'PONG') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis${sentinel ? ' sentinel' : ''} on port ${port} did not start`);
}

async function startAll(configs: string[], sentinel: boolean): Promise<RedisProcs> {
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-redis-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  for (const [i, body] of configs.entries()) {
    const port = await freePort();
    const file = path.join(dir, `redis-${i}.conf`);
    writeFileSync(
      file,
      `port ${port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir ${dir}\n${body}\n`.replace('{i}', String(i)),
    );
    const args = sentinel ? [file, '--sentinel'] : [file];
    children.push(spawn('redis-server', args, { stdio: 'ignore' }));
    ports.push(port);
  }
  await Promise.all(ports.map((p) => waitForPing(p, sentinel)));
  return {
    ports,
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Sentinel watching the standalone Redis at masterPort under the name `masterName`. */
export function startSentinel(masterPort: number, masterName: string): Promise<RedisProcs> {
  return startAll([`sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`], true);
}

/** A three-master Redis Cluster with no replicas, every slot assigned. */
export async function startCluster(): Promise<RedisProcs> {
  const procs = await startAll(
    [0, 1, 2].map(() => 'cluster-enabled yes\ncluster-config-file nodes-{i}.conf\ncluster-node-timeout 2000'),
    false,
  );
  execFileSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...procs.ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { stdio: 'ignore', timeout: 20_000 },
  );
  for (let i = 0; i < 100; i++) {
    const info = execFileSync('redis-cli', ['-p', String(procs.ports[0]), 'CLUSTER', 'INFO'], {
      encoding: 'utf8',
    });
    if (info.includes('cluster_state:ok')) return procs;
    await new Promise((r) => setTimeout(r, 100));
  }
  await procs.stop();
  throw new Error('redis cluster did not reach cluster_state:ok');
}
