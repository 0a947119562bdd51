/**
 * The one-shot HMAC-SHA256 equals Node's createHmac for any key and data, and the macaroon signature chain
 * built on it equals the npm `macaroon` package's (go-macaroon's JS twin).
 */
import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { hmacChain, hmacSha256, sha256 } from '../../src/l402/hmac';
import { sign } from '../../src/l402/macaroon';

interface JsMacaroon {
  readonly signature: Uint8Array;
  addFirstPartyCaveat(condition: Uint8Array): void;
}
const jsMacaroon: {
  newMacaroon(args: { identifier: Uint8Array; rootKey: Uint8Array; version: 2 }): JsMacaroon;
} = require('macaroon');

// size 'max': lengths over the whole range, past the 64-byte block and the initial scratch buffer.
const bytes = (maxLength: number) => fc.uint8Array({ maxLength, size: 'max' }).map((a) => Buffer.from(a));
const hmac = (key: Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest();

describe('one-shot HMAC-SHA256', () => {
  it('equals createHmac for keys shorter and longer than a block, and data of any length', () => {
    fc.assert(
      fc.property(bytes(200), bytes(3000), (key, data) => {
        expect(hmacSha256(key, data).equals(hmac(key, data))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('chains as createHmac chains: each digest keys the next step', () => {
    fc.assert(
      fc.property(bytes(100), bytes(100), fc.array(bytes(200), { maxLength: 8 }), (key, first, rest) => {
        let expected = hmac(key, first);
        for (const data of rest) expected = hmac(expected, data);
        expect(hmacChain(key, first, rest).equals(expected)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('hashes as createHash', () => {
    fc.assert(
      fc.property(bytes(300), (data) => {
        expect(sha256(data).equals(createHash('sha256').update(data).digest())).toBe(true);
      }),
    );
  });

  it('signs a macaroon as the npm macaroon package does', () => {
    fc.assert(
      fc.property(
        bytes(100),
        bytes(100),
        fc.array(bytes(120), { maxLength: 8 }),
        (rootKey, identifier, caveats) => {
          const theirs = jsMacaroon.newMacaroon({
            identifier: new Uint8Array(identifier),
            rootKey: new Uint8Array(rootKey),
            version: 2,
          });
          for (const caveat of caveats) theirs.addFirstPartyCaveat(new Uint8Array(caveat));
          expect(sign(rootKey, identifier, caveats).toString('hex')).toBe(
            Buffer.from(theirs.signature).toString('hex'),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
