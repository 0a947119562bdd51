/**
 * pino JSON logs. Secrets never reach a log line: decisions log a payment hash prefix only, and these paths
 * are redacted in case an object carrying them is ever logged whole.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: 'plannt' },
      redact: {
        paths: [
          'authorization',
          'headers.authorization',
          'macaroon',
          'preimage',
          'root_keys',
          '*.macaroon_base64',
        ],
        censor: '[redacted]',
      },
    },
    // Asynchronous writes keep logging off the check's latency; pino flushes on exit.
    destination ?? pino.destination({ sync: false }),
  );
}
