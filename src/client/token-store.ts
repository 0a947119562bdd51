/**
 * Where paid credentials wait for the next request to the same resource: a Plannt bundle or pass (or an
 * aperture token) serves many requests on one payment. A token is dropped when it expires, when the server
 * says no uses are left (`x-l402-uses-remaining: 0`), or when the server refuses it (a 402 buys a new one).
 * Keyed by origin and path (the route). The store holds preimages: in memory, or in a file only its owner reads.
 */
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Scheme } from './challenge';

export interface StoredToken {
  scheme: Scheme;
  macaroon: string;
  /** Hex. */
  preimage: string;
  /** Milliseconds since the epoch: the token's own expiry (its earliest `*_valid_until` caveat), when known. */
  expiresAtMs?: number;
  /** What the server last said is left (`x-l402-uses-remaining`); unknown until the first use. */
  usesRemaining?: number | 'unlimited';
}

export interface TokenStore {
  get(key: string): StoredToken | undefined;
  set(key: string, token: StoredToken): void;
  delete(key: string): void;
}

export function memoryTokenStore(): TokenStore {
  const tokens = new Map<string, StoredToken>();
  return {
    get: (key) => tokens.get(key),
    set: (key, token) => void tokens.set(key, token),
    delete: (key) => void tokens.delete(key),
  };
}

/** The key a token is stored under: origin and path, without the query. */
export function tokenKey(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/**
 * A token store in a JSON file, so `plannt fetch` runs reuse a bundle or pass bought by an earlier run. Written
 * whole on each change with mode 0600: it holds preimages, and anyone holding one can spend the token.
 */
export function fileTokenStore(file: string, nowMs: () => number = Date.now): TokenStore {
  const tokens = new Map<string, StoredToken>();
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, StoredToken>;
    for (const [key, token] of Object.entries(saved)) {
      if (token.expiresAtMs === undefined || token.expiresAtMs > nowMs()) tokens.set(key, token);
    }
  }
  const save = () => {
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(Object.fromEntries(tokens)), { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, file);
  };
  return {
    get: (key) => tokens.get(key),
    set: (key, token) => {
      tokens.set(key, token);
      save();
    },
    delete: (key) => {
      if (tokens.delete(key)) save();
    },
  };
}
