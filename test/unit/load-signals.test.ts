import { loadSignals } from '../../src/adapters/load-signals';

const busyFor = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
};
const nextTicks = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('load signals', () => {
  it('remember a stall as the worst lag for seconds, after the current lag has faded', async () => {
    const signals = loadSignals(10, 2000);
    try {
      await nextTicks(30);
      busyFor(120);
      await nextTicks(30);
      // The stall is seen whole (a busier machine only makes it longer).
      expect(signals.worstLagMs()).toBeGreaterThanOrEqual(100);
      const seen = signals.worstLagMs();
      const from = performance.now();
      await nextTicks(200);
      // It fades by half every 2 s (however late the ticks ran); the current lag would be gone by now.
      const faded = 0.5 ** ((performance.now() - from + 20) / 2000);
      expect(signals.worstLagMs()).toBeGreaterThanOrEqual(seen * faded);
    } finally {
      signals.stop();
    }
  });
});
