/**
 * A fresh token for the route the spawned-server tests price (`weather` / `forecast`, 10 sats), as if its invoice
 * had been paid: a random preimage, its hash in a macaroon minted with the server's root key, valid 10 minutes.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Keyring } from '../../src/l402/keys';
import { mintMacaroon } from '../../src/l402/mint';

export interface PaidToken {
  /** `L402 <macaroon>:<preimage>` */
  authorization: string;
  /** Hex, as the spent-set keys it. */
  paymentHash: string;
}

export function paidToken(keys: Keyring): PaidToken {
  const preimage = randomBytes(32);
  const paymentHash = createHash('sha256').update(preimage).digest();
  const validUntil = Math.floor(Date.now() / 1000) + 600;
  const terms = { service: 'weather', routeId: 'forecast', priceSats: 10, validUntil };
  const macaroon = mintMacaroon(paymentHash, terms, keys, 'plannt');
  return {
    authorization: `L402 ${macaroon.toString('base64')}:${preimage.toString('hex')}`,
    paymentHash: paymentHash.toString('hex'),
  };
}
