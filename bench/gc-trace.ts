/** One scavenge as V8's `--trace-gc-nvp` reports it: the collector's own counters. */
export interface Scavenge {
  pauseMs: number;
  allocated: number;
  survived: number;
  promoted: number;
}

/** One `--trace-gc-nvp` line of a scavenge, or undefined. */
export function scavengeOf(line: string): Scavenge | undefined {
  if (!line.includes(' gc=s ')) return undefined;
  const field = (name: string) => Number(new RegExp(` ${name}=([\\d.]+)`).exec(line)?.[1] ?? Number.NaN);
  return {
    pauseMs: field('pause'),
    allocated: field('allocated'),
    survived: field('new_space_survived'),
    promoted: field('promoted'),
  };
}
