/**
 * Bounds a dependency call: the caller gets an answer by the deadline even if the dependency never replies.
 *
 * The timeout measures the dependency, not this process's event loop. It starts once the loop reaches its
 * check phase, after the turn's commands have left, even those a client holds back to send in one write; and on
 * expiry it lets one more poll phase read the sockets before giving up, since timers run before the poll and
 * after a busy stretch would fire while the reply already waits unread.
 *
 * The calls begun in one turn share one timer, armed for the earliest of them and cleared once all have
 * settled: a timer, an immediate and a race per call cost more than the Redis command they bound
 * (docs/benchmarks.md).
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const batch = currentBatch ?? openBatch();
    const call: Watched = { ms, expiresAt: 0, settled: false, expire: () => reject(onTimeout()) };
    batch.calls.push(call);
    batch.open++;
    work.then(
      (value) => {
        settle(batch, call);
        resolve(value);
      },
      (err: unknown) => {
        settle(batch, call);
        reject(err);
      },
    );
  });
}

interface Watched {
  ms: number;
  /** performance.now() ms; set when the batch is armed. */
  expiresAt: number;
  settled: boolean;
  expire(): void;
}

interface Batch {
  calls: Watched[];
  /** Calls not yet settled. */
  open: number;
  timer: NodeJS.Timeout | undefined;
}

/** The batch of calls begun in this turn, until the check phase arms it. */
let currentBatch: Batch | undefined;

function openBatch(): Batch {
  const batch: Batch = { calls: [], open: 0, timer: undefined };
  currentBatch = batch;
  setImmediate(arm, batch);
  return batch;
}

function arm(batch: Batch): void {
  if (currentBatch === batch) currentBatch = undefined;
  if (batch.open === 0) return;
  const now = performance.now();
  for (const call of batch.calls) call.expiresAt = now + Math.max(0, call.ms);
  schedule(batch, now);
}

/** One timer for the batch's earliest open call; on firing, one more poll phase before the sweep. */
function schedule(batch: Batch, now: number): void {
  let earliest = Number.POSITIVE_INFINITY;
  for (const call of batch.calls) if (!call.settled && call.expiresAt < earliest) earliest = call.expiresAt;
  batch.timer = setTimeout(() => setImmediate(sweep, batch, performance.now()), Math.max(0, earliest - now));
}

/** Fails the calls that were due when the timer fired and are still open; re-arms for the rest. */
function sweep(batch: Batch, firedAt: number): void {
  batch.timer = undefined;
  const waiting: Watched[] = [];
  for (const call of batch.calls) {
    if (call.settled) continue;
    if (call.expiresAt <= firedAt) {
      settle(batch, call);
      call.expire();
    } else waiting.push(call);
  }
  batch.calls = waiting;
  if (batch.open > 0) schedule(batch, performance.now());
}

function settle(batch: Batch, call: Watched): void {
  if (call.settled) return;
  call.settled = true;
  batch.open--;
  if (batch.open === 0 && batch.timer !== undefined) {
    clearTimeout(batch.timer);
    batch.timer = undefined;
  }
}
