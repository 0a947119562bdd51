/**
 * Root keys. Each macaroon's own root key is derived from a server root key and its identifier, so a token
 * can be verified with nothing but the configured keys: no database on the access decision.
 */
import { hmacSha256 } from './hmac';

export const MIN_ROOT_KEY_BYTES = 32;
/**
 * 32 random bytes hold about 30 distinct values and as many distinct steps between neighbours; fewer than
 * this many of either happens to a random key with odds below 1e-15, and to every made-up key
 * (all zeros, one repeated byte, `deadbeef…`, a counter 00 01 02 …).
 */
const MIN_DISTINCT = 12;

/** Why a root key is too regular to be random, or undefined for a plausible key. */
export function weakKeyProblem(secret: Buffer): string | undefined {
  const values = new Set(secret);
  const steps = new Set<number>();
  for (let i = 1; i < secret.length; i++) steps.add(((secret[i] ?? 0) - (secret[i - 1] ?? 0) + 256) % 256);
  if (values.size < MIN_DISTINCT || steps.size < MIN_DISTINCT)
    return 'too regular to be random (repeated bytes or a pattern): make one with `openssl rand -hex 32`';
  return undefined;
}

export interface RootKey {
  /** uint32, carried in the first 4 bytes of every token id minted with this key. */
  id: number;
  secret: Buffer;
}

export interface Keyring {
  /** The key new tokens are minted with. */
  current: RootKey;
  /** Every key still accepted for verification, the current one included. */
  byId: ReadonlyMap<number, Buffer>;
}

export function keyring(keys: readonly RootKey[], currentId: number): Keyring {
  const byId = new Map(keys.map((k) => [k.id, k.secret] as const));
  const secret = byId.get(currentId);
  if (!secret) throw new Error(`current root key id ${currentId} is not among the configured keys`);
  if (byId.size !== keys.length) throw new Error('root key ids must be unique');
  return { current: { id: currentId, secret }, byId };
}

export function macaroonRootKey(serverSecret: Buffer, identifier: Buffer): Buffer {
  return hmacSha256(serverSecret, identifier);
}
