/** A TCP proxy in front of the test Redis that can be cut, restored or slowed, as an outage or a slow Redis. */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export interface RedisProxy {
  url: string;
  /** Down: refuse new connections and cut open ones. */
  setUp(up: boolean): void;
  /** Hold every Redis reply this long before passing it on (commands still reach Redis at once). */
  setReplyDelayMs(ms: number): void;
  close(): Promise<void>;
}

/** A TCP proxy to the real Redis that can be cut, restored or slowed. */
export async function startRedisProxy(): Promise<RedisProxy> {
  let up = true;
  let replyDelayMs = 0;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(6379, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    // Replies keep their order, as on a real connection, even when the delay changes mid-stream.
    let lastRelease = 0;
    upstream.on('data', (chunk: Buffer) => {
      const release = Math.max(Date.now() + replyDelayMs, lastRelease);
      lastRelease = release;
      if (release <= Date.now()) {
        client.write(chunk);
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!client.destroyed) client.write(chunk);
      }, release - Date.now());
      timers.add(timer);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    setUp(value) {
      up = value;
      if (!up) for (const s of sockets) s.destroy();
    },
    setReplyDelayMs(ms) {
      replyDelayMs = ms;
    },
    close: () =>
      new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
