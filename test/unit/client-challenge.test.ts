/**
 * Reading a challenge into an offer, and refusing the offers a wallet must not pay. Invoices are real
 * BOLT11 signed with a fixed key at a fixed time; macaroons are minted as Plannt mints them.
 */
import bolt11 from 'bolt11';
import { checkOffer, findChallenge, type Offer, readOffer } from '../../src/client/challenge';
import { ChallengeError } from '../../src/client/errors';
import { networkOfChain } from '../../src/client/network';
import { challengeHeaders } from '../../src/l402/header';
import { mint, NOW, OTHER_PREIMAGE, PAYMENT_HASH, sha256, signed } from '../support/l402';

const NODE_KEY = Buffer.alloc(32, 0x01).toString('hex');
const NETWORKS = {
  bitcoin: { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] },
  testnet: { bech32: 'tb', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
  signet: { bech32: 'tbs', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
  regtest: { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
};

interface InvoiceOptions {
  network?: keyof typeof NETWORKS;
  millisatoshis?: string | null;
  expirySeconds?: number | null;
  paymentHash?: Buffer;
}

function invoice(options: InvoiceOptions = {}): string {
  const tags: { tagName: string; data: unknown }[] = [
    { tagName: 'payment_hash', data: (options.paymentHash ?? PAYMENT_HASH).toString('hex') },
    { tagName: 'payment_secret', data: '11'.repeat(32) },
    { tagName: 'description', data: 'weather forecast' },
  ];
  if (options.expirySeconds !== null)
    tags.push({ tagName: 'expire_time', data: options.expirySeconds ?? 600 });
  const amount = options.millisatoshis === undefined ? '10000' : options.millisatoshis;
  const unsigned = bolt11.encode({
    network: NETWORKS[options.network ?? 'regtest'],
    timestamp: NOW,
    ...(amount !== null && { millisatoshis: amount }),
    tags: tags as bolt11.PaymentRequestObject['tags'],
  });
  return bolt11.sign(unsigned, NODE_KEY).paymentRequest ?? '';
}

const MACAROON = mint().toString('base64');
const offerFor = (inv: string, macaroon = MACAROON): Offer =>
  readOffer({ scheme: 'L402', macaroon, invoice: inv });
const problem = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ChallengeError) return err.code;
    throw err;
  }
  return undefined;
};
const POLICY = { network: 'regtest' as const, nowMs: NOW * 1000, minValiditySeconds: 30 };

describe('findChallenge', () => {
  it('prefers L402 over LSAT in a joined header', () => {
    const value = [...challengeHeaders('bWFj', 'lnbcrt1')].reverse().join(', ');
    expect(findChallenge(value)).toEqual({ scheme: 'L402', macaroon: 'bWFj', invoice: 'lnbcrt1' });
  });

  it('takes an LSAT-only challenge, case-insensitively, and the `token` name for the macaroon', () => {
    expect(findChallenge('lsat token="bWFj", invoice="lnbcrt1"')).toEqual({
      scheme: 'LSAT',
      macaroon: 'bWFj',
      invoice: 'lnbcrt1',
    });
  });

  it('is undefined without an L402 or LSAT challenge', () => {
    expect(findChallenge(null)).toBeUndefined();
    expect(findChallenge('Bearer realm="x"')).toBeUndefined();
  });

  it('refuses an L402 challenge without an invoice (malformed_challenge)', () => {
    expect(problem(() => findChallenge('L402 macaroon="bWFj"'))).toBe('malformed_challenge');
  });
});

describe('readOffer', () => {
  it('decodes amount, network, payment hash, expiry and description', () => {
    const offer = offerFor(invoice());
    expect(offer).toMatchObject({
      amountSats: 10,
      amountMsat: 10_000n,
      network: 'regtest',
      paymentHash: PAYMENT_HASH.toString('hex'),
      expiresAt: new Date((NOW + 600) * 1000),
      description: 'weather forecast',
    });
  });

  it.each([
    ['bitcoin', 'lnbc'],
    ['testnet', 'lntb'],
    ['signet', 'lntbs'],
    ['regtest', 'lnbcrt'],
  ] as const)('reads the %s network from %s…', (network, prefix) => {
    const inv = invoice({ network });
    expect(inv.startsWith(prefix)).toBe(true);
    expect(offerFor(inv).network).toBe(network);
  });

  it('rounds a millisat amount up to whole sats', () => {
    expect(offerFor(invoice({ millisatoshis: '10001' })).amountSats).toBe(11);
  });

  it('applies BOLT11 default expiry of one hour when the invoice has none', () => {
    expect(offerFor(invoice({ expirySeconds: null })).expiresAt).toEqual(new Date((NOW + 3600) * 1000));
  });

  it('refuses an amountless invoice (amountless_invoice)', () => {
    expect(problem(() => offerFor(invoice({ millisatoshis: null })))).toBe('amountless_invoice');
  });

  it('refuses an invoice with a broken checksum or signature (invalid_invoice)', () => {
    const inv = invoice();
    const flipped = inv.slice(0, 20) + (inv[20] === 'q' ? 'p' : 'q') + inv.slice(21);
    expect(problem(() => offerFor(flipped))).toBe('invalid_invoice');
    expect(problem(() => offerFor('not an invoice'))).toBe('invalid_invoice');
  });

  it('refuses a macaroon bound to another payment hash (unbound_macaroon)', () => {
    const other = invoice({ paymentHash: sha256(OTHER_PREIMAGE) });
    expect(problem(() => offerFor(other))).toBe('unbound_macaroon');
  });

  it('refuses an unreadable macaroon or one whose identifier is not L402 version 0 (malformed_macaroon)', () => {
    expect(problem(() => offerFor(invoice(), 'AAAA'))).toBe('malformed_macaroon');
    const v1 = Buffer.alloc(66);
    v1.writeUInt16BE(1, 0);
    PAYMENT_HASH.copy(v1, 2);
    expect(problem(() => offerFor(invoice(), signed([], { identifier: v1 }).toString('base64')))).toBe(
      'malformed_macaroon',
    );
  });
});

describe('checkOffer', () => {
  it('accepts an offer on the wallet network with time to spare', () => {
    expect(() => checkOffer(offerFor(invoice()), POLICY)).not.toThrow();
  });

  it('refuses a mainnet invoice for a regtest wallet, and a regtest invoice for a mainnet wallet (wrong_network)', () => {
    expect(problem(() => checkOffer(offerFor(invoice({ network: 'bitcoin' })), POLICY))).toBe(
      'wrong_network',
    );
    expect(problem(() => checkOffer(offerFor(invoice()), { ...POLICY, network: 'bitcoin' }))).toBe(
      'wrong_network',
    );
  });

  it('refuses an expired invoice and one expiring within the minimum validity (invoice_expired)', () => {
    const offer = offerFor(invoice({ expirySeconds: 60 }));
    expect(problem(() => checkOffer(offer, { ...POLICY, nowMs: (NOW + 61) * 1000 }))).toBe('invoice_expired');
    expect(problem(() => checkOffer(offer, { ...POLICY, nowMs: (NOW + 31) * 1000 }))).toBe('invoice_expired');
    expect(problem(() => checkOffer(offer, { ...POLICY, nowMs: (NOW + 30) * 1000 }))).toBeUndefined();
  });
});

describe('networkOfChain', () => {
  it('reads LND chain ids in internal byte order (as LND reports them) and display order', () => {
    expect(networkOfChain('06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f')).toBe(
      'regtest',
    );
    expect(networkOfChain('0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206')).toBe(
      'regtest',
    );
    expect(networkOfChain('6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000')).toBe(
      'bitcoin',
    );
    expect(networkOfChain('00'.repeat(32))).toBeUndefined();
  });
});
