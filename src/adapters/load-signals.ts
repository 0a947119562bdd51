/**
 * What admission control reads about this process's load (core/decide.ts, Admission):
 * - how late the event loop runs: a timer due every `intervalMs` reports how much later it fired;
 * - how long recent paid checks took from arrival to decision.
 * Each keeps its latest peak whole and lets it fade by half over a few ticks, so one busy turn is remembered
 * for the checks queued behind it and a process that caught up reads as unloaded within ~50 ms.
 * The worst lag fades by half only every `worstHalfLifeMs`: how late a timer set now may fire, judged by the
 * stalls of the last seconds, not only the last turn.
 */
export interface LoadSignals {
  lagMs(): number;
  worstLagMs(): number;
  recentCheckMs(): number;
  recordCheckMs(ms: number): void;
  stop(): void;
}

export function loadSignals(intervalMs = 10, worstHalfLifeMs = 2000): LoadSignals {
  let lag = 0;
  let worst = 0;
  let recent = 0;
  let due = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - due;
    lag = Math.max(late, lag / 2);
    worst = Math.max(late, worst * 0.5 ** ((late + intervalMs) / worstHalfLifeMs));
    recent /= 2;
    due = now + intervalMs;
  }, intervalMs);
  // A sampler must not keep the process alive.
  timer.unref();
  return {
    lagMs: () => (lag < 1 ? 0 : lag),
    worstLagMs: () => (worst < 1 ? 0 : worst),
    recentCheckMs: () => (recent < 1 ? 0 : recent),
    recordCheckMs(ms) {
      if (ms > recent) recent = ms;
    },
    stop: () => clearInterval(timer),
  };
}
