/**
 * Readiness from background probes of each dependency, so /readyz and gRPC health answer from memory and
 * reflect reality within one probe interval. Probes never run on the check path.
 */
export interface Probe {
  name: string;
  probe(): Promise<void>;
  /** A failing non-critical dependency is reported (status, metric) but keeps the pod ready. */
  critical: boolean;
}

export interface Readiness {
  isReady(): boolean;
  status(): Record<string, boolean>;
  /** Runs every probe once now; resolves when all have answered. */
  refresh(): Promise<void>;
  onChange(listener: (ready: boolean) => void): void;
  stop(): void;
}

export function startReadiness(
  probes: readonly Probe[],
  intervalMs: number,
  report: (name: string, ok: boolean) => void,
): Readiness {
  const state = new Map(probes.map((p) => [p.name, false]));
  const listeners: ((ready: boolean) => void)[] = [];
  const isReady = () => probes.every((p) => !p.critical || state.get(p.name));

  const refresh = async () => {
    const before = isReady();
    await Promise.all(
      probes.map(async (p) => {
        const ok = await p.probe().then(
          () => true,
          () => false,
        );
        state.set(p.name, ok);
        report(p.name, ok);
      }),
    );
    const after = isReady();
    if (after !== before) for (const listener of listeners) listener(after);
  };

  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void refresh().finally(() => {
      running = false;
    });
  }, intervalMs);
  timer.unref();

  return {
    isReady,
    status: () => Object.fromEntries(state),
    refresh,
    onChange: (listener) => listeners.push(listener),
    stop: () => clearInterval(timer),
  };
}
