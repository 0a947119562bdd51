/** How many worker processes `plannt serve` runs when the config does not say. */
import { availableParallelism } from 'node:os';
import type { Config } from './config';

export function defaultWorkers(config: Config, cpus: () => number = availableParallelism): number {
  // The memory spent-set lives in one process: with more, a token would be spent once per worker.
  if (config.spent_set.kind === 'memory') return 1;
  // Node 24's libuv counts the CPUs of the affinity mask (cpusets) and the cgroup quota (v2 cpu.max, v1
  // cfs_quota_us), rounded down, at least 1: a pod limited to 2 CPUs gets 2 whatever the node has.
  return cpus();
}
