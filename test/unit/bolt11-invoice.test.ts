/**
 * The dev backend's BOLT11 encoder against the bolt11 package it replaced: the same fields and key give the same
 * payment request, character for character, and the package decodes it to those fields, signed by that key.
 */
import { randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import fc from 'fast-check';
import { publicKeyCreate } from 'secp256k1';
import { type InvoiceFields, signedInvoice } from '../../src/adapters/bolt11-invoice';

const FEATURES = {
  word_length: 4,
  var_onion_optin: { required: false, supported: true },
  payment_secret: { required: false, supported: true },
};
const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };

function byThePackage(f: InvoiceFields, nodeKey: Buffer): string {
  const unsigned = bolt11.encode({
    network: REGTEST,
    satoshis: f.sats,
    timestamp: f.timestamp,
    tags: [
      { tagName: 'payment_hash', data: f.paymentHash.toString('hex') },
      { tagName: 'payment_secret', data: f.paymentSecret.toString('hex') },
      { tagName: 'description', data: f.description },
      { tagName: 'expire_time', data: f.expirySeconds },
      // What the package adds by default, in the order it adds it.
      { tagName: 'feature_bits', data: FEATURES },
      { tagName: 'min_final_cltv_expiry', data: f.minFinalCltvExpiry },
    ],
  });
  const signed = bolt11.sign(unsigned, nodeKey.toString('hex')).paymentRequest;
  if (!signed) throw new Error('bolt11 did not sign');
  return signed;
}

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));
const fields: fc.Arbitrary<InvoiceFields> = fc.record({
  network: fc.constant('bcrt'),
  sats: fc.oneof(
    fc.integer({ min: 1, max: 1_000 }),
    fc.constantFrom(10, 100, 1_000, 100_000, 100_000_000, 2_100_000_000_000_000),
    fc.integer({ min: 1, max: 2_100_000_000_000_000 }),
  ),
  timestamp: fc.integer({ min: 0, max: 2 ** 35 - 1 }),
  paymentHash: bytes32,
  paymentSecret: bytes32,
  description: fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.fullUnicodeString({ maxLength: 150 }),
    fc.constant('weather/forecast'),
  ),
  expirySeconds: fc.oneof(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 31, 32, 600, 3600)),
  minFinalCltvExpiry: fc.constantFrom(9, 18, 40, 144),
});

describe('signedInvoice', () => {
  const nodeKey = randomBytes(32);
  const nodePublicKey = Buffer.from(publicKeyCreate(nodeKey, true)).toString('hex');

  it('gives the bolt11 package’s payment request for the same fields and key', () => {
    fc.assert(
      fc.property(fields, (f) => {
        expect(signedInvoice(f, nodeKey)).toBe(byThePackage(f, nodeKey));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes, with the bolt11 package, to its fields, signed by its key', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const decoded = bolt11.decode(signedInvoice(f, nodeKey));
        const tag = (name: string) => decoded.tags.find((t) => t.tagName === name)?.data;
        expect({
          sats: decoded.satoshis,
          timestamp: decoded.timestamp,
          paymentHash: tag('payment_hash'),
          paymentSecret: tag('payment_secret'),
          description: tag('description'),
          expiry: tag('expire_time'),
          cltv: tag('min_final_cltv_expiry'),
          paymentSecretSupported: (tag('feature_bits') as { payment_secret?: { supported?: boolean } })
            ?.payment_secret?.supported,
          payee: decoded.payeeNodeKey,
        }).toEqual({
          sats: f.sats,
          timestamp: f.timestamp,
          paymentHash: f.paymentHash.toString('hex'),
          paymentSecret: f.paymentSecret.toString('hex'),
          description: f.description,
          expiry: f.expirySeconds,
          cltv: f.minFinalCltvExpiry,
          paymentSecretSupported: true,
          payee: nodePublicKey,
        });
      }),
      { numRuns: 200 },
    );
  });

  it('refuses what no invoice can carry: no amount, a description over 639 bytes', () => {
    const f = fc.sample(fields, 1)[0] as InvoiceFields;
    expect(() => signedInvoice({ ...f, sats: 0 }, nodeKey)).toThrow(RangeError);
    expect(() => signedInvoice({ ...f, description: 'x'.repeat(640) }, nodeKey)).toThrow(RangeError);
    expect(() => signedInvoice({ ...f, description: 'x'.repeat(639) }, nodeKey)).not.toThrow();
  });
});
