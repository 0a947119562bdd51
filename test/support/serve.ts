/**
 * `plannt serve` as a pod runs it: the built CLI in its own process, its JSON log lines collected as they come.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { waitFor } from './plannt';

const CLI = path.join(__dirname, '../../dist/src/cli.js');

export interface Served {
  child: ChildProcess;
  /** Every JSON line written so far, from the primary and every worker. */
  logs: Record<string, unknown>[];
  ports: { grpc: number; admin: number };
}

/** Starts the CLI on `configFile`; resolves once it logged `plannt started` (the pod's, with workers). */
export async function serve(configFile: string): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_ENV: 'test' },
  });
  const logs: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines)
      if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  const started = () =>
    logs.find((l) => l.msg === 'plannt started') as { grpc_port: number; admin_port: number } | undefined;
  if (!(await waitFor(async () => started() !== undefined, 30_000))) {
    child.kill('SIGKILL');
    throw new Error(`plannt did not start: ${JSON.stringify(logs)}`);
  }
  const line = started() as { grpc_port: number; admin_port: number };
  return { child, logs, ports: { grpc: line.grpc_port, admin: line.admin_port } };
}
