import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { withTimeout } from '../../src/adapters/timeout';

const timedOut = () => new Error('timed out');
const never = () => new Promise<never>(() => {});
/** `npm test` builds first: the child process runs the compiled module. */
const COMPILED = path.join(__dirname, '../../dist/src/adapters/timeout.js');
const busyFor = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('withTimeout', () => {
  it("gives the work's value or error", async () => {
    await expect(withTimeout(Promise.resolve('done'), 1000, timedOut)).resolves.toBe('done');
    await expect(withTimeout(Promise.reject(new Error('refused')), 1000, timedOut)).rejects.toThrow(
      'refused',
    );
    const late = withTimeout(new Promise((r) => setTimeout(r, 20, 'late')), 1000, timedOut);
    await expect(late).resolves.toBe('late');
  });

  it('leaves no timer behind once its calls have settled: the process exits, not ten minutes later', () => {
    const script = `const { withTimeout } = require(${JSON.stringify(COMPILED)});
      const slow = new Promise((r) => setTimeout(r, 20, 'late'));
      Promise.all([withTimeout(Promise.resolve(1), 600000, Error), withTimeout(slow, 600000, Error)])
        .then(() => console.log('settled'));`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(run.signal).toBeNull();
    expect(run.stdout.trim()).toBe('settled');
  });

  it('fails a call that never answers with its own error, once its time is up', async () => {
    const started = performance.now();
    await expect(withTimeout(never(), 30, timedOut)).rejects.toThrow('timed out');
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
  });

  it('times out each call begun in one turn at its own time', async () => {
    const started = performance.now();
    const settledAt: Record<string, number> = {};
    const track = (name: string, p: Promise<unknown>) =>
      p.then(
        () => (settledAt[name] = performance.now() - started),
        () => (settledAt[name] = -(performance.now() - started)),
      );
    const slowReply = new Promise((r) => setTimeout(r, 80, 'ok'));
    await Promise.all([
      track('short', withTimeout(never(), 20, timedOut)),
      track('long', withTimeout(never(), 120, timedOut)),
      track('answered', withTimeout(slowReply, 200, timedOut)),
    ]);
    // Negative: timed out, after that long.
    expect(settledAt.short).toBeLessThanOrEqual(-19);
    expect(settledAt.long).toBeLessThanOrEqual(-119);
    expect(settledAt.answered).toBeGreaterThanOrEqual(79);
  });

  it('takes a reply that arrived while the event loop was busy past the timeout', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const [peer] = (await accepted) as [net.Socket];
    await once(client, 'connect');
    try {
      const reply = withTimeout(
        once(client, 'data').then(([data]) => String(data)),
        20,
        timedOut,
      );
      // After the timer is armed (immediates run in order): the reply reaches the kernel, then the loop
      // stays busy well past the timeout, so the timer is due before the poll phase reads the socket.
      setImmediate(() => {
        peer.write('pong');
        busyFor(60);
      });
      await expect(reply).resolves.toBe('pong');
    } finally {
      client.destroy();
      peer.destroy();
      server.close();
    }
  });
});
