/**
 * Bounds a dependency call: the caller gets an answer by the deadline even if the dependency never replies.
 *
 * The timeout measures the dependency, not this process's event loop. It starts once the loop reaches its
 * check phase, after clients that batch writes there (ioredis auto-pipelining) have sent the command; and on
 * expiry it lets one more poll phase read the sockets before giving up, since timers run before the poll and
 * after a busy stretch would fire while the reply already waits unread.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const timeout = new Promise<never>((_, reject) => {
    immediate = setImmediate(() => {
      timer = setTimeout(
        () => {
          immediate = setImmediate(() => reject(onTimeout()));
        },
        Math.max(0, ms),
      );
    });
  });
  return Promise.race([work, timeout]).finally(() => {
    clearImmediate(immediate);
    clearTimeout(timer);
  });
}
