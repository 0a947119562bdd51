/**
 * What admission control reads about this process's load (core/decide.ts, Admission):
 * - how late the event loop runs: a timer due every `intervalMs` reports how much later it fired;
 * - how long recent paid checks took from arrival to decision.
 * Each keeps its latest peak whole and lets it fade by half over a few ticks, so one busy turn is remembered
 * for the checks queued behind it and a process that caught up reads as unloaded within ~50 ms.
 */
export interface LoadSignals {
  lagMs(): number;
  recentCheckMs(): number;
  recordCheckMs(ms: number): void;
  stop(): void;
}

export function loadSignals(intervalMs = 10): LoadSignals {
  let lag = 0;
  let recent = 0;
  let due = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(now - due, lag / 2);
    recent /= 2;
    due = now + intervalMs;
  }, intervalMs);
  // A sampler must not keep the process alive.
  timer.unref();
  return {
    lagMs: () => (lag < 1 ? 0 : lag),
    recentCheckMs: () => (recent < 1 ? 0 : recent),
    recordCheckMs(ms) {
      if (ms > recent) recent = ms;
    },
    stop: () => clearInterval(timer),
  };
}
