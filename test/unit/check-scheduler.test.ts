import { checkScheduler } from '../../src/server/check-scheduler';

const TIMINGS = { sliceMs: 5, congestedMs: 20, dueMs: 30 };
/** Never congested, however slowly this machine runs the test: arrival order throughout. */
const UNCONGESTED = { ...TIMINGS, congestedMs: 60_000 };
const LATER = () => Date.now() + 10_000;

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};
/** Resolves after the immediates queued before it: the scheduler's next slice, whatever the timers do. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/**
 * The turns until `count` checks ran. A slice ends after `sliceMs` of the clock, so on a busy machine a pause
 * (a GC, the hypervisor) between two checks leaves the rest to the next slice: order is the scheduler's
 * promise, the number of slices is not.
 */
const until = async (ran: readonly unknown[], count: number) => {
  while (ran.length < count) await nextTurn();
};

describe('checkScheduler', () => {
  test('runs deferred checks in the order they came, none in the turn that deferred them', async () => {
    const scheduler = checkScheduler(UNCONGESTED);
    const ran: number[] = [];
    for (let i = 0; i < 5; i++) scheduler.defer(() => ran.push(i), LATER());
    expect(ran).toEqual([]);
    await until(ran, 5);
    expect(ran).toEqual([0, 1, 2, 3, 4]);
  });

  test('yields to other work between slices of a long queue', async () => {
    const scheduler = checkScheduler(UNCONGESTED);
    const ran: string[] = [];
    for (let i = 0; i < 10; i++)
      scheduler.defer(() => {
        if (i === 0) setImmediate(() => ran.push('io'));
        busy(2);
        ran.push(String(i));
      }, LATER());
    while (ran.length < 11) await new Promise((resolve) => setTimeout(resolve, 5));
    // 2 ms each in 5 ms slices: a few run, the reads and replies waiting meanwhile get their turn, then the rest.
    const io = ran.indexOf('io');
    expect(io).toBeGreaterThan(0);
    expect(io).toBeLessThan(5);
    expect(ran.filter((r) => r !== 'io')).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
  });

  test('dates every request read in one turn from when that turn began', async () => {
    const scheduler = checkScheduler(UNCONGESTED);
    const first = scheduler.readSince();
    busy(20);
    expect(scheduler.readSince()).toBe(first);
    await nextTurn();
    expect(scheduler.readSince()).toBeGreaterThanOrEqual(first + 20);
  });

  test('keeps running checks deferred while it works, and only those not yet run', async () => {
    const scheduler = checkScheduler({ ...UNCONGESTED, sliceMs: 1 });
    const ran: number[] = [];
    for (let i = 0; i < 5000; i++)
      scheduler.defer(() => {
        ran.push(i);
        if (i === 4999) scheduler.defer(() => ran.push(5000), LATER());
      }, LATER());
    await until(ran, 5001);
    expect(ran).toEqual(Array.from({ length: 5001 }, (_, i) => i));
  });

  test('decides the newest first once the oldest has waited too long, and sheds the old ones as their deadlines near', async () => {
    const scheduler = checkScheduler(TIMINGS);
    const ran: string[] = [];
    const start = Date.now();
    const record = (name: string) => (shed: boolean) => ran.push(shed ? `${name} (shed)` : name);
    scheduler.defer(record('old, due soon'), start + 150);
    scheduler.defer(record('old'), start + 1000);
    busy(30);
    scheduler.defer(record('new'), Date.now() + 1000);
    busy(45);
    // The oldest have waited 75 ms (> congestedMs): the first one half its 150 ms, the second not.
    await until(ran, 3);
    expect(ran).toEqual(['old, due soon (shed)', 'new', 'old']);
  });

  test('sheds nothing while the queue drains, not even a check past its deadline (admission control judges it)', async () => {
    const scheduler = checkScheduler(UNCONGESTED);
    const ran: boolean[] = [];
    scheduler.defer((shed) => ran.push(shed), Date.now() + 20);
    busy(40);
    await nextTurn();
    expect(ran).toEqual([false]);
  });
});
