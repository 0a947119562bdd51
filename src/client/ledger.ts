/**
 * The spend ledger: one entry per invoice the client decided to pay, from reservation to outcome. The budget
 * is computed from it, so a payment counts from the moment it is decided, before any await, and concurrent
 * requests cannot both spend the last sats. Preimages stay in memory unless `recordPreimages` is set; with
 * `file`, entries are appended as JSON lines and read back at start, so caps span runs of the CLI.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import type { Spend } from './budget';

export type PaymentStatus =
  /** Decided and handed to the wallet; counts at its most (amount + max fee). */
  | 'pending'
  | 'paid'
  /** Definitely not paid; counts nothing. */
  | 'failed'
  /** The wallet failed in a way that may still move money; counts at its most. */
  | 'unknown';

export interface LedgerEntry {
  paymentHash: string;
  /** When the payment was decided. */
  time: string;
  host: string;
  url: string;
  amountSats: number;
  /** The fee paid once `paid`; the most it may be before. */
  feeSats: number;
  status: PaymentStatus;
  /** From the decision to pay until the wallet returned the preimage. */
  settleMs?: number;
  error?: string;
  /** Only in `entries({ withPreimages: true })`, or in the file with `recordPreimages`. */
  preimage?: string;
}

export interface LedgerOptions {
  /** Append entries to this JSON-lines file and load it at start. */
  file?: string;
  /** Write preimages to the file too (they prove payment; anyone holding one can spend the token). */
  recordPreimages?: boolean;
  now?: () => number;
}

export interface SpendReport {
  /** Amounts plus fees of paid entries, plus the most that pending and unknown ones may cost. */
  totalSats: number;
  paidSats: number;
  feeSats: number;
  payments: number;
  /** Reserved for payments in flight or of unknown outcome. */
  uncertainSats: number;
  byHost: Record<string, { sats: number; payments: number }>;
}

export class SpendLedger {
  private readonly entriesByHash = new Map<string, LedgerEntry>();
  private readonly preimages = new Map<string, string>();
  readonly now: () => number;

  constructor(private readonly options: LedgerOptions = {}) {
    this.now = options.now ?? Date.now;
    if (options.file && existsSync(options.file)) this.load(options.file);
  }

  /** Records the decision to pay; the entry counts against the budget from now on. */
  reserve(entry: { paymentHash: string; host: string; url: string; amountSats: number; maxFeeSats: number }) {
    this.write({
      paymentHash: entry.paymentHash,
      time: new Date(this.now()).toISOString(),
      host: entry.host,
      url: entry.url,
      amountSats: entry.amountSats,
      feeSats: entry.maxFeeSats,
      status: 'pending',
    });
  }

  settle(paymentHash: string, outcome: { preimage: string; feeSats: number; settleMs: number }): void {
    const entry = this.require(paymentHash);
    this.preimages.set(paymentHash, outcome.preimage);
    this.write({ ...entry, status: 'paid', feeSats: outcome.feeSats, settleMs: outcome.settleMs });
  }

  fail(paymentHash: string, settled: 'no' | 'unknown', error: string): void {
    const entry = this.require(paymentHash);
    this.write({ ...entry, status: settled === 'no' ? 'failed' : 'unknown', error });
  }

  find(paymentHash: string): LedgerEntry | undefined {
    const entry = this.entriesByHash.get(paymentHash);
    return entry && { ...entry };
  }

  /** The preimage of a paid entry, from memory (or the file when it records them). */
  preimage(paymentHash: string): string | undefined {
    return this.preimages.get(paymentHash);
  }

  /** Costs as the budget counts them: paid at amount + fee, pending and unknown at their most. */
  spends(): Spend[] {
    return [...this.entriesByHash.values()]
      .filter((e) => e.status !== 'failed')
      .map((e) => ({ timeMs: Date.parse(e.time), host: e.host, sats: e.amountSats + e.feeSats }));
  }

  entries(filter: { host?: string; sinceMs?: number; withPreimages?: boolean } = {}): LedgerEntry[] {
    return [...this.entriesByHash.values()]
      .filter((e) => filter.host === undefined || e.host === filter.host)
      .filter((e) => filter.sinceMs === undefined || Date.parse(e.time) >= filter.sinceMs)
      .map((e) => {
        const preimage = filter.withPreimages ? this.preimages.get(e.paymentHash) : undefined;
        return preimage ? { ...e, preimage } : { ...e };
      });
  }

  report(): SpendReport {
    const report: SpendReport = {
      totalSats: 0,
      paidSats: 0,
      feeSats: 0,
      payments: 0,
      uncertainSats: 0,
      byHost: {},
    };
    for (const e of this.entriesByHash.values()) {
      if (e.status === 'failed') continue;
      const cost = e.amountSats + e.feeSats;
      report.totalSats += cost;
      if (e.status === 'paid') {
        report.paidSats += e.amountSats;
        report.feeSats += e.feeSats;
        report.payments += 1;
      } else report.uncertainSats += cost;
      const host = report.byHost[e.host] ?? { sats: 0, payments: 0 };
      report.byHost[e.host] = host;
      host.sats += cost;
      if (e.status === 'paid') host.payments += 1;
    }
    return report;
  }

  private require(paymentHash: string): LedgerEntry {
    const entry = this.entriesByHash.get(paymentHash);
    if (!entry) throw new Error(`no ledger entry for payment hash ${paymentHash}`);
    return entry;
  }

  private write(entry: LedgerEntry): void {
    this.entriesByHash.set(entry.paymentHash, entry);
    if (!this.options.file) return;
    const preimage = this.options.recordPreimages ? this.preimages.get(entry.paymentHash) : undefined;
    appendFileSync(this.options.file, `${JSON.stringify(preimage ? { ...entry, preimage } : entry)}\n`, {
      mode: 0o600,
    });
  }

  private load(file: string): void {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const { preimage, ...entry } = JSON.parse(line) as LedgerEntry;
      // A payment left pending by a run that ended mid-flight may have gone through: count it.
      this.entriesByHash.set(
        entry.paymentHash,
        entry.status === 'pending' ? { ...entry, status: 'unknown' } : entry,
      );
      if (preimage) this.preimages.set(entry.paymentHash, preimage);
    }
  }
}
