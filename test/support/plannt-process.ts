/** Reading a spawned `plannt serve`: its start line and the ports in it, or every line it writes. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const CLI = path.join(__dirname, '../../dist/src/cli.js');

/** The ports `plannt serve` reports in its "plannt started" line. */
export interface StartedPorts {
  grpc_port: number;
  http_port: number;
  admin_port: number;
}

/**
 * The first line `child` writes to stdout that matches `pattern`, within `timeoutMs`; the output so far is in
 * the error if it never comes. The listener goes once the line is found, so later output is not kept.
 */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const stdout = child.stdout;
  if (!stdout) return Promise.reject(new Error('the child has no stdout pipe'));
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => pattern.test(l));
      if (!line) return;
      clearTimeout(timer);
      stdout.off('data', onData);
      resolve(line);
    };
    const timer = setTimeout(() => {
      stdout.off('data', onData);
      reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms in: ${out}`));
    }, timeoutMs);
    stdout.on('data', onData);
  });
}

/** Waits for `plannt serve` to say it started and returns the ports it listens on. */
export async function startedPorts(child: ChildProcess, timeoutMs = 30_000): Promise<StartedPorts> {
  return JSON.parse(await waitForLine(child, /plannt started/, timeoutMs)) as StartedPorts;
}

export interface Served {
  child: ChildProcess;
  /** Every JSON line written so far, from the primary and every worker. */
  logs: Record<string, unknown>[];
  ports: StartedPorts;
}

/** Starts the built CLI on `configFile`, as a pod runs it, keeping every log line; resolves once it started. */
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
  try {
    return { child, logs, ports: await startedPorts(child) };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
