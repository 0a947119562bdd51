/**
 * Long-running daemons (btcd, lnd) for the regtest harness: spawned detached with their output in a log
 * file, so they outlive the command that started them (`npm run regtest:up`), and stopped by PID only
 * after checking the PID still runs the binary we started. Every wait is bounded.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const REPO_ROOT = findRepoRoot(__dirname);
export const TOOLS = ['btcd', 'btcctl', 'lnd', 'lncli'] as const;
export type Tool = (typeof TOOLS)[number];

export class MissingToolchain extends Error {}

/** Thrown by a wait's probe to stop waiting at once (the daemon it waits for has exited). */
export class GaveUp extends Error {}

/** Absolute paths of the regtest binaries, from bin/ (or PLANNT_REGTEST_BIN); throws naming the fix. */
export function toolPaths(env: NodeJS.ProcessEnv = process.env): Record<Tool, string> {
  const dir = env.PLANNT_REGTEST_BIN ?? path.join(REPO_ROOT, 'bin');
  const paths = Object.fromEntries(TOOLS.map((t) => [t, path.join(dir, t)])) as Record<Tool, string>;
  const missing = TOOLS.filter((t) => !existsSync(paths[t]));
  if (missing.length > 0) {
    throw new MissingToolchain(
      `regtest binaries missing in ${dir}: ${missing.join(', ')}. Build them with test/regtest/build-tools.sh ` +
        '(needs Go >= 1.25, https://go.dev/dl/; 10+ minutes the first time, then cached).',
    );
  }
  return paths;
}

export interface Daemon {
  name: string;
  pid: number;
  bin: string;
  log: string;
}

/** Starts `bin args…` in its own process group, stdout and stderr appended to `log`. */
export function spawnDaemon(name: string, bin: string, args: readonly string[], log: string): Daemon {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new Error(`${name}: could not start ${bin}`);
    // Reap it if it exits while we run, without keeping this process alive for it.
    child.on('error', () => {});
    child.unref();
    return { name, pid: child.pid, bin, log };
  } finally {
    closeSync(fd);
  }
}

/** True while `pid` runs `bin` (not a zombie, not a recycled PID). */
export function isRunning(pid: number, bin: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name; Z = exited, not yet reaped.
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    return argv0 === bin;
  } catch {
    return false;
  }
}

/** Signals the daemon and waits for it to go; SIGKILL after `graceMs`. No-op if it is not running. */
export async function stopDaemon(
  d: Daemon,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 15_000,
): Promise<void> {
  if (!isRunning(d.pid, d.bin)) return;
  process.kill(d.pid, signal);
  if (await poll(() => !isRunning(d.pid, d.bin), graceMs, 50)) return;
  process.kill(d.pid, 'SIGKILL');
  if (!(await poll(() => !isRunning(d.pid, d.bin), 5000, 50))) {
    throw new Error(`${d.name} (pid ${d.pid}) did not exit after SIGKILL`);
  }
}

/** Runs a command to completion; resolves with stdout, rejects with stderr in the message. */
export function run(bin: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const what = `${path.basename(bin)} ${args.filter((a) => !a.startsWith('--')).join(' ')}`;
        reject(new Error(`${what}: ${(stderr || stdout || err.message).trim()}`));
      } else resolve(stdout);
    });
  });
}

/** Polls until `probe` is true or `timeoutMs` passes; a throwing probe counts as false, unless it throws GaveUp. */
export async function poll(
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  stepMs = 200,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  const attempt = async () => {
    try {
      return await probe();
    } catch (err) {
      if (err instanceof GaveUp) throw err;
      return false;
    }
  };
  for (;;) {
    if (await attempt()) return true;
    if (Date.now() >= until) return false;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

/**
 * Like poll, but throws naming `what`, with the tail of the daemon's log when given; gives up at once if
 * that daemon exits.
 */
export async function waitUntil(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  daemon?: Daemon,
): Promise<void> {
  const tail = () => (daemon ? `\n--- last lines of ${daemon.log} ---\n${lastLines(daemon.log, 15)}` : '');
  const alive = () => {
    if (daemon && !isRunning(daemon.pid, daemon.bin)) throw new GaveUp(`${daemon.name} exited`);
    return probe();
  };
  let ok: boolean;
  try {
    ok = await poll(alive, timeoutMs);
  } catch (err) {
    throw new Error(`regtest: ${(err as Error).message} while waiting for ${what}${tail()}`);
  }
  if (!ok)
    throw new Error(
      `regtest: timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${tail()}`,
    );
}

export function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

function findRepoRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'test', 'regtest')))
      return dir;
  }
  throw new Error(`cannot find the repository root above ${from}`);
}
