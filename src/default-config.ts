/**
 * The embedded default behind `plannt serve` without --config: the dev invoice backend and the in-memory
 * spent-set, on loopback, with a fresh random root key. For trying Plannt, never for production.
 */
import { randomBytes } from 'node:crypto';

export function embeddedDefault(): Record<string, unknown> {
  return {
    listen: { grpc: '127.0.0.1:9001', admin: '127.0.0.1:9090', http: '127.0.0.1:9002' },
    root_keys: [{ id: 1, key: randomBytes(32).toString('hex') }],
    current_key_id: 1,
    backend: { kind: 'dev' },
    spent_set: { kind: 'memory' },
    routes: [
      {
        id: 'generate',
        service: 'inference',
        price_sats: 10,
        path: { prefix: '/v1/generate' },
        methods: ['POST'],
      },
      { id: 'search', service: 'search', price_sats: 1, path: { prefix: '/v1/search' } },
      { id: 'status', service: 'public', price_sats: 0, path: { exact: '/status' } },
    ],
    unmatched: { action: 'deny' },
  };
}
