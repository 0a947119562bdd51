/**
 * Checks are decided in short slices of the event loop, not in the turn that read them.
 *
 * Node reads all a socket holds in one turn (libuv reads up to 32 × 64 KiB). Deciding each check inside that
 * turn makes the turn as long as the batch. The requests read late in it, and those still waiting in the
 * kernel, have waited unseen: their deadline counts only from when they were read, so an allow judged in time
 * reaches a caller that already gave up, and the token is spent for nothing.
 *
 * Here each check is stamped with the start of the turn that read it, and queued. The queue is worked in
 * slices of `sliceMs`, so reads, Redis replies and answers are interleaved with the work. Admission control
 * (core/decide.ts) then judges each check by its true age, and refuses the late ones cheaply.
 *
 * The order adapts to load. A queue that drains keeps arrival order. Once its oldest check has waited longer
 * than `congestedMs`, the newest is decided first: it has its whole budget, so its answer comes early, far
 * from a deadline it could miss. And the checks that have waited half their time (or whose deadline is within
 * `dueMs`) are shed as they come to the head: a congested queue would serve them only after checks newer than
 * them, and between slices the loop may be busy for tens of milliseconds, so a refusal left until the deadline
 * nears reaches a caller that has given up. Shed, they are refused at once, cheaply, and can retry.
 */
export interface CheckScheduler {
  /**
   * When the current turn of the event loop began reading (Date.now() ms): a request read in this turn
   * arrived no later.
   */
  readSince(): number;
  /**
   * Runs `task` in a later slice; `deadline` (Date.now() ms) is when its caller stops waiting. `shed` is true
   * when the check is to be refused without the work.
   */
  defer(task: (shed: boolean) => void, deadline: number): void;
}

export interface SchedulerTimings {
  sliceMs: number;
  congestedMs: number;
  dueMs: number;
}

const DEFAULT_TIMINGS: SchedulerTimings = { sliceMs: 5, congestedMs: 20, dueMs: 30 };

interface Queued {
  task: (shed: boolean) => void;
  queuedAt: number;
  deadline: number;
}

export function checkScheduler(timings: SchedulerTimings = DEFAULT_TIMINGS): CheckScheduler {
  const { sliceMs, congestedMs, dueMs } = timings;
  let queue: Queued[] = [];
  let head = 0;
  let working = false;
  let turnStart: number | undefined;
  const endTurn = () => {
    turnStart = undefined;
  };
  /** Runs the next check: the oldest while the queue drains, else the newest, shedding the old on the way. */
  const runNext = (now: number) => {
    const oldest = queue[head] as Queued;
    const waited = now - oldest.queuedAt;
    if (waited <= congestedMs) {
      head++;
      oldest.task(false);
      return;
    }
    if (waited >= (oldest.deadline - oldest.queuedAt) / 2 || oldest.deadline - now <= dueMs) {
      head++;
      oldest.task(true);
      return;
    }
    (queue.pop() as Queued).task(false);
  };
  const work = () => {
    const until = performance.now() + sliceMs;
    while (head < queue.length && performance.now() < until) runNext(Date.now());
    if (head < queue.length) {
      // A queue that never empties under sustained load must not keep what it has run.
      if (head >= COMPACT_AFTER) {
        queue = queue.slice(head);
        head = 0;
      }
      setImmediate(work);
      return;
    }
    queue = [];
    head = 0;
    working = false;
  };
  return {
    readSince() {
      if (turnStart === undefined) {
        turnStart = Date.now();
        // Immediates run once this turn's reads are done.
        setImmediate(endTurn);
      }
      return turnStart;
    },
    defer(task, deadline) {
      queue.push({ task, queuedAt: turnStart ?? Date.now(), deadline });
      if (working) return;
      working = true;
      setImmediate(work);
    },
  };
}

const COMPACT_AFTER = 4096;
