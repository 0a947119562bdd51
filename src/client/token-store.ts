/**
 * Where paid credentials wait for the next request to the same resource. Plannt's tokens are single-use,
 * so reuse mostly earns a fresh challenge; servers with reusable tokens (aperture) save a payment.
 * Keyed by origin and path; the store holds preimages, so it lives in memory.
 */
import type { Scheme } from './challenge';

export interface StoredToken {
  scheme: Scheme;
  macaroon: string;
  /** Hex. */
  preimage: string;
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
