/** How many worker processes `plannt serve` runs when the config does not say. */
import { availableParallelism } from 'node:os';
import type { Config } from './config';

export function defaultWorkers(config: Config, cpus: () => number = availableParallelism): number {
  // The memory spent-set lives in one process: with more, a token would be spent once per worker. So do the
  // dev backend's invoices: /dev/pay could not pay one another worker made. local_fallback counts an outage's
  // uses in each process's memory, so a token could be used once per worker: one keeps it once per replica.
  const oneProcess =
    config.spent_set.kind === 'memory' ||
    config.backend.kind === 'dev' ||
    config.spent_set.on_error === 'local_fallback';
  if (oneProcess) return 1;
  // Node 24's libuv: the affinity mask (cpusets) capped by the cgroup quota (v2 cpu.max; v1 only with
  // cpu,cpuacct mounted together), rounded down, at least 1: a pod limited to 2 CPUs gets 2 on any node.
  return cpus();
}
