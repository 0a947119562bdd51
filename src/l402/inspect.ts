/** Decodes a token for operators: what it says, not whether it is valid. */
import { parseCaveat } from './caveats';
import { decodeBase64 } from './header';
import { decodeIdentifier, keyIdOf } from './identifier';
import { decodeMacaroon } from './macaroon';

export interface TokenDescription {
  location: string;
  version: number;
  payment_hash: string;
  token_id: string;
  key_id: number;
  caveats: string[];
}

export function inspectToken(base64: string): TokenDescription {
  const mac = decodeMacaroon(decodeBase64(base64.trim()), { maxBytes: 16384, maxCaveats: 64 });
  const { paymentHash, tokenId } = decodeIdentifier(mac.identifier);
  return {
    location: mac.location,
    version: mac.identifier.readUInt16BE(0),
    payment_hash: paymentHash.toString('hex'),
    token_id: tokenId.toString('hex'),
    key_id: keyIdOf(tokenId),
    caveats: mac.caveats.map((c) => {
      const parsed = parseCaveat(c);
      return parsed ? `${parsed.condition}=${parsed.value}` : c.toString('utf8');
    }),
  };
}
