/**
 * How late this process's event loop runs: a timer due every `intervalMs` reports how much later it fired.
 * The latest lateness counts whole and earlier ones fade by half each tick, so one busy turn is remembered for
 * a few ticks (the checks queued behind it) and a loop that caught up reads as on time within ~50 ms.
 */
export interface EventLoopLag {
  lagMs(): number;
  stop(): void;
}

export function eventLoopLag(intervalMs = 10): EventLoopLag {
  let lag = 0;
  let due = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(now - due, lag / 2);
    due = now + intervalMs;
  }, intervalMs);
  // A sampler must not keep the process alive.
  timer.unref();
  return {
    lagMs: () => (lag < 1 ? 0 : lag),
    stop: () => clearInterval(timer),
  };
}
