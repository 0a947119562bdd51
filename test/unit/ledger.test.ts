import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SpendLedger } from '../../src/client/ledger';

const dir = mkdtempSync(path.join(tmpdir(), 'plannt-ledger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NOW = Date.parse('2024-05-01T12:00:00Z');
const HASH_A = 'aa'.repeat(32);
const HASH_B = 'bb'.repeat(32);
const PREIMAGE = 'cd'.repeat(32);
const reservation = (paymentHash: string, host = 'api.example') => ({
  paymentHash,
  host,
  url: `https://${host}/v1/x`,
  amountSats: 10,
  maxFeeSats: 3,
});

describe('the spend ledger', () => {
  it('counts a reservation at its most, a payment at amount + fee, a definite failure at nothing', () => {
    const ledger = new SpendLedger({ now: () => NOW });
    ledger.reserve(reservation(HASH_A));
    expect(ledger.spends()).toEqual([{ timeMs: NOW, host: 'api.example', sats: 13 }]);
    ledger.settle(HASH_A, { preimage: PREIMAGE, feeSats: 1, settleMs: 40 });
    expect(ledger.spends()).toEqual([{ timeMs: NOW, host: 'api.example', sats: 11 }]);
    ledger.reserve(reservation(HASH_B, 'other.example'));
    ledger.fail(HASH_B, 'no', 'no route');
    expect(ledger.spends()).toHaveLength(1);
    expect(ledger.report()).toEqual({
      totalSats: 11,
      paidSats: 10,
      feeSats: 1,
      payments: 1,
      uncertainSats: 0,
      byHost: { 'api.example': { sats: 11, payments: 1 } },
    });
  });

  it('keeps counting a payment of unknown outcome', () => {
    const ledger = new SpendLedger({ now: () => NOW });
    ledger.reserve(reservation(HASH_A));
    ledger.fail(HASH_A, 'unknown', 'connection lost');
    expect(ledger.report()).toMatchObject({ totalSats: 13, uncertainSats: 13, payments: 0 });
    expect(ledger.find(HASH_A)).toMatchObject({ status: 'unknown', error: 'connection lost' });
  });

  it('answers queries by host and time, without preimages unless asked', () => {
    let now = NOW;
    const ledger = new SpendLedger({ now: () => now });
    ledger.reserve(reservation(HASH_A, 'a.example'));
    ledger.settle(HASH_A, { preimage: PREIMAGE, feeSats: 0, settleMs: 5 });
    now += 60_000;
    ledger.reserve(reservation(HASH_B, 'b.example'));
    expect(ledger.entries({ host: 'a.example' }).map((e) => e.paymentHash)).toEqual([HASH_A]);
    expect(ledger.entries({ sinceMs: NOW + 1 }).map((e) => e.paymentHash)).toEqual([HASH_B]);
    expect(JSON.stringify(ledger.entries())).not.toContain(PREIMAGE);
    expect(ledger.entries({ withPreimages: true })[0]?.preimage).toBe(PREIMAGE);
    expect(ledger.preimage(HASH_A)).toBe(PREIMAGE);
  });

  it('persists to a file without preimages and reads it back, so caps span runs', () => {
    const file = path.join(dir, 'spend.jsonl');
    const first = new SpendLedger({ file, now: () => NOW });
    first.reserve(reservation(HASH_A));
    first.settle(HASH_A, { preimage: PREIMAGE, feeSats: 2, settleMs: 5 });
    first.reserve(reservation(HASH_B)); // left pending, as by a crash mid-payment
    expect(readFileSync(file, 'utf8')).not.toContain(PREIMAGE);

    const second = new SpendLedger({ file });
    expect(second.find(HASH_A)).toMatchObject({ status: 'paid', feeSats: 2 });
    expect(second.find(HASH_B)).toMatchObject({ status: 'unknown' });
    expect(second.report().totalSats).toBe(12 + 13);
    expect(second.preimage(HASH_A)).toBeUndefined();
  });

  it('writes preimages to the file only with recordPreimages', () => {
    const file = path.join(dir, 'with-preimages.jsonl');
    const ledger = new SpendLedger({ file, recordPreimages: true, now: () => NOW });
    ledger.reserve(reservation(HASH_A));
    ledger.settle(HASH_A, { preimage: PREIMAGE, feeSats: 0, settleMs: 5 });
    expect(readFileSync(file, 'utf8')).toContain(PREIMAGE);
    expect(new SpendLedger({ file }).preimage(HASH_A)).toBe(PREIMAGE);
  });
});
