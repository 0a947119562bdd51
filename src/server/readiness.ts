/**
 * Each dependency's health from background probes, so /readyz, the metrics and the logs answer from memory and
 * reflect reality within one probe interval. Probes never run on the check path.
 *
 * No dependency decides whether the pod is ready. Every replica shares the same LND and Redis, so an outage
 * that took pods out of service would take all of them out at once, and with them the requests that need
 * neither: paid requests need no LND, free routes need nothing. A pod is unready only while it drains.
 */
export interface Probe {
  name: string;
  probe(): Promise<void>;
}

export interface Readiness {
  status(): Record<string, boolean>;
  /** Runs every probe once now; resolves when all have answered. */
  refresh(): Promise<void>;
  /** Called with the dependency's name and state whenever a probe's answer differs from the last one. */
  onChange(listener: (name: string, ok: boolean) => void): void;
  stop(): void;
}

export function startReadiness(
  probes: readonly Probe[],
  intervalMs: number,
  report: (name: string, ok: boolean) => void,
): Readiness {
  const state = new Map<string, boolean>();
  const listeners: ((name: string, ok: boolean) => void)[] = [];

  const refresh = async () => {
    await Promise.all(
      probes.map(async (p) => {
        const ok = await p.probe().then(
          () => true,
          () => false,
        );
        const before = state.get(p.name);
        state.set(p.name, ok);
        report(p.name, ok);
        if (before !== undefined && before !== ok) for (const listener of listeners) listener(p.name, ok);
      }),
    );
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
    status: () => Object.fromEntries(state),
    refresh,
    onChange: (listener) => listeners.push(listener),
    stop: () => clearInterval(timer),
  };
}
