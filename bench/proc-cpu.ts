/**
 * CPU time of a process and its descendants, read from /proc: a multi-worker server's children count too.
 * And the whole machine's, for the noise gauge.
 * A child that exits moves its time into its parent's cutime/cstime, so differences stay right across exits.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const CLOCK_TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

interface ProcStat {
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited between the listing and the read
  }
  // Fields after the command name (which may hold spaces and parentheses): state, ppid, … utime is field 14.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i] ?? 0);
  return { ppid: n(1), ticks: n(11) + n(12) + n(13) + n(14) };
}

/** CPU microseconds used so far by `root` and every live descendant. */
export function treeCpuUs(root: number): number {
  const stats = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (s) stats.set(pid, s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  let ticks = 0;
  const queue = [root];
  // A pid tree is finite and acyclic; the bound only guards against a corrupt read.
  for (let i = 0; i < queue.length && i < stats.size; i++) {
    const pid = queue[i] as number;
    ticks += stats.get(pid)?.ticks ?? 0;
    queue.push(...(children.get(pid) ?? []));
  }
  return (ticks / CLOCK_TICKS_PER_S) * 1e6;
}

/** Busy and total milliseconds summed over every core of the machine. */
export function machineCpuMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    const b = times.user + times.nice + times.sys + times.irq;
    busy += b;
    total += b + times.idle;
  }
  return { busy, total };
}

/** The machine's CPU time so far, all of it and the part the hypervisor stole (/proc/stat, in ticks). */
export function machineTicks(): { total: number; steal: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1, 9) ?? [];
  return { total: fields.reduce((s, f) => s + Number(f), 0), steal: Number(fields[7]) };
}
