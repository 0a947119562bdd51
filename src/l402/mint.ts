/** Mints a Plannt token: a macaroon bound to an invoice's payment hash and to the route and price paid for. */

import { caveatsFor, formatCaveat, type MintedTerms } from './caveats';
import { encodeIdentifier, newTokenId } from './identifier';
import { type Keyring, macaroonRootKey } from './keys';
import { encodeMacaroon, sign } from './macaroon';
import { randomBytes } from './random';

export function mintMacaroon(
  paymentHash: Buffer,
  terms: MintedTerms,
  keys: Keyring,
  location: string,
  random: (n: number) => Buffer = randomBytes,
): Buffer {
  const identifier = encodeIdentifier({ paymentHash, tokenId: newTokenId(keys.current.id, random) });
  const caveats = caveatsFor(terms).map(formatCaveat);
  const signature = sign(macaroonRootKey(keys.current.secret, identifier), identifier, caveats);
  return encodeMacaroon({ location, identifier, caveats, signature });
}
