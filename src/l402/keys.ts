/**
 * Root keys. Each macaroon's own root key is derived from a server root key and its identifier, so a token
 * can be verified with nothing but the configured keys: no database on the access decision.
 */
import { createHmac } from 'node:crypto';

export const MIN_ROOT_KEY_BYTES = 32;

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
  return createHmac('sha256', serverSecret).update(identifier).digest();
}
