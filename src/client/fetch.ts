/**
 * `l402Fetch`: fetch that answers an L402 challenge by paying it, within a budget. On a 402 it reads the
 * challenge, refuses what it must not pay (wrong network, expired, amountless, macaroon not bound to the
 * invoice, over budget), pays through the wallet, and retries once with `Authorization: L402 <mac>:<preimage>`.
 * One challenge is paid at most once: a second 402 after paying is returned as it is, and an invoice the
 * ledger already knows is never handed to the wallet again.
 */
import { createHash } from 'node:crypto';
import { type Allowance, allowance, type BudgetLimits, validateLimits } from './budget';
import { checkOffer, findChallenge, type L402Challenge, type Offer, readOffer } from './challenge';
import { BudgetExceededError, PaymentError } from './errors';
import { SpendLedger, type SpendReport } from './ledger';
import { memoryTokenStore, type StoredToken, type TokenStore, tokenKey } from './token-store';
import type { Wallet } from './wallet';

export interface L402Options {
  wallet: Wallet;
  budget: BudgetLimits;
  /**
   * Where payments are recorded and the budget is counted from. Pass the same ledger to every call (or use
   * createL402Client) so the total, per-host and window caps span calls; without one each call starts at zero.
   */
  ledger?: SpendLedger;
  /**
   * Reuse paid tokens for later requests to the same origin and path (a bundle or pass buys many requests).
   * createL402Client keeps one in memory unless given another.
   */
  tokenStore?: TokenStore;
  /** Most the routing fee of one payment may be, further bounded by what the caps leave. Default 5. */
  maxFeeSats?: number;
  /** Refuse invoices that expire sooner than this. Default 30 s. */
  minInvoiceValiditySeconds?: number;
  /** Stop before paying and report what would be paid (budget checks still apply). */
  dryRun?: boolean;
  /** The fetch to send requests with (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

export interface Receipt {
  url: string;
  host: string;
  amountSats: number;
  feeSats: number;
  paymentHash: string;
  /** From handing the invoice to the wallet until it returned the preimage. */
  settleMs: number;
}

export interface WouldPay {
  offer: Offer;
  /** The fee cap the payment would get. */
  maxFeeSats: number;
  allowance: Allowance;
}

export interface L402Result {
  /** The final response: the paid retry, or the first answer when nothing was paid. */
  response: Response;
  /** Present when this call paid. */
  receipt?: Receipt;
  /** Present with dryRun when the server asked for a payment. */
  wouldPay?: WouldPay;
}

export const DEFAULT_MAX_FEE_SATS = 5;
export const DEFAULT_MIN_INVOICE_VALIDITY_SECONDS = 30;

/** fetch-compatible: resolves with the final response; see l402Request for the receipt. */
export async function l402Fetch(
  input: string | URL | Request,
  init: RequestInit | undefined,
  options: L402Options,
): Promise<Response> {
  return (await l402Request(input, init, options)).response;
}

export async function l402Request(
  input: string | URL | Request,
  init: RequestInit | undefined,
  options: L402Options,
): Promise<L402Result> {
  const budget = validateLimits(options.budget);
  const ledger = options.ledger ?? new SpendLedger();
  const send = await replayable(input, init, options.fetch ?? globalThis.fetch);
  const key = tokenKey(new URL(send.url));
  let stored = options.tokenStore?.get(key);
  if (stored?.expiresAtMs !== undefined && stored.expiresAtMs <= ledger.now()) {
    options.tokenStore?.delete(key);
    stored = undefined;
  }

  const first = await send(send.url, stored);
  const challenge = payableChallenge(first, stored !== undefined);
  if (!challenge) {
    if (stored) remember(options.tokenStore, key, stored, first);
    return { response: first };
  }
  // The server refused the token we held (used up, expired, spent): drop it and buy again, within the budget.
  if (stored) options.tokenStore?.delete(key);

  const url = first.url || send.url;
  const host = new URL(url).host;
  const offer = readOffer(challenge);
  checkOffer(offer, {
    network: await options.wallet.network(),
    nowMs: ledger.now(),
    minValiditySeconds: options.minInvoiceValiditySeconds ?? DEFAULT_MIN_INVOICE_VALIDITY_SECONDS,
  });

  const previous = ledger.find(offer.paymentHash);
  let preimage = ledger.preimage(offer.paymentHash);
  let receipt: Receipt | undefined;
  if (previous && !(previous.status === 'paid' && preimage)) {
    throw new PaymentError(
      'already_attempted',
      `invoice ${offer.paymentHash} was already handed to the wallet (${previous.status}); not paying it again`,
      previous.status === 'failed' ? 'no' : 'unknown',
    );
  }
  if (!previous) {
    // From here to ledger.reserve nothing awaits, so concurrent calls cannot spend the same sats.
    const room = allowance(budget, ledger.spends(), host, ledger.now());
    if (offer.amountSats > room.sats) {
      throw new BudgetExceededError(room.limitedBy, offer.amountSats, room.sats, host);
    }
    const maxFeeSats = Math.min(options.maxFeeSats ?? DEFAULT_MAX_FEE_SATS, room.sats - offer.amountSats);
    if (options.dryRun) return { response: first, wouldPay: { offer, maxFeeSats, allowance: room } };
    ledger.reserve({ paymentHash: offer.paymentHash, host, url, amountSats: offer.amountSats, maxFeeSats });
    await first.body?.cancel();
    const paid = await payOnce(options.wallet, ledger, offer, maxFeeSats);
    preimage = paid.preimage;
    receipt = { url, host, amountSats: offer.amountSats, ...paid.receipt };
  } else {
    await first.body?.cancel();
  }

  const token: StoredToken = {
    scheme: offer.scheme,
    macaroon: offer.macaroon,
    preimage: preimage ?? '',
    ...(offer.tokenExpiresAt && { expiresAtMs: offer.tokenExpiresAt.getTime() }),
  };
  const response = await send(url, token);
  remember(options.tokenStore, tokenKey(new URL(url)), token, response);
  return receipt ? { response, receipt } : { response };
}

/** The header a Plannt allow carries for a token that lasts: `<n>` uses left, or `unlimited`. */
export const USES_REMAINING_HEADER = 'x-l402-uses-remaining';

/**
 * Keeps a token the server accepted for the next request, unless it said none is left; a token it refused
 * (any 401/402) is not kept. A server that says nothing (aperture, a Plannt single-use token) is tried again:
 * the worst case is the 402 with a fresh challenge that not sending it would have earned.
 */
function remember(store: TokenStore | undefined, key: string, token: StoredToken, response: Response): void {
  if (!store) return;
  if (response.status === 401 || response.status === 402) {
    store.delete(key);
    return;
  }
  const header = response.headers.get(USES_REMAINING_HEADER)?.trim();
  if (header === '0') {
    store.delete(key);
    return;
  }
  const left =
    header === 'unlimited' ? 'unlimited' : header && /^\d{1,15}$/.test(header) ? Number(header) : undefined;
  store.set(key, left === undefined ? token : { ...token, usesRemaining: left });
}

export interface L402Client {
  /** fetch-compatible. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** With the receipt, and per-call narrowing of the options (a smaller per-request cap, a dry run). */
  request(
    input: string | URL | Request,
    init?: RequestInit,
    overrides?: Partial<Pick<L402Options, 'budget' | 'dryRun' | 'maxFeeSats'>>,
  ): Promise<L402Result>;
  readonly ledger: SpendLedger;
  report(): SpendReport;
}

/** A client whose calls share one ledger, so the caps hold across them. */
export function createL402Client(options: L402Options): L402Client {
  const ledger = options.ledger ?? new SpendLedger();
  const base: L402Options = { tokenStore: memoryTokenStore(), ...options, ledger };
  return {
    fetch: async (input, init) => (await l402Request(input, init, base)).response,
    request: (input, init, overrides = {}) => l402Request(input, init, { ...base, ...overrides, ledger }),
    ledger,
    report: () => ledger.report(),
  };
}

/** A 402 with an L402 challenge; or a 401 with one when the token we sent was refused (spent, expired). */
function payableChallenge(response: Response, sentToken: boolean): L402Challenge | undefined {
  if (response.status !== 402 && !(response.status === 401 && sentToken)) return undefined;
  return findChallenge(response.headers.get('www-authenticate'));
}

async function payOnce(
  wallet: Wallet,
  ledger: SpendLedger,
  offer: Offer,
  maxFeeSats: number,
): Promise<{ preimage: string; receipt: Pick<Receipt, 'feeSats' | 'paymentHash' | 'settleMs'> }> {
  const started = performance.now();
  let payment: Awaited<ReturnType<Wallet['pay']>>;
  try {
    payment = await wallet.pay(offer.invoice, { maxFeeSats });
  } catch (err) {
    const failure =
      err instanceof PaymentError
        ? err
        : new PaymentError('payment_failed', `${wallet.name} wallet: ${(err as Error).message}`, 'unknown', {
            cause: err,
          });
    ledger.fail(offer.paymentHash, failure.settled, failure.message);
    throw failure;
  }
  const settleMs = Math.round(performance.now() - started);
  const preimage = payment.preimage.toString('hex');
  if (createHash('sha256').update(payment.preimage).digest('hex') !== offer.paymentHash) {
    ledger.fail(offer.paymentHash, 'unknown', 'the wallet returned a preimage of another payment hash');
    throw new PaymentError(
      'bad_preimage',
      `${wallet.name} wallet returned a preimage that does not hash to ${offer.paymentHash}`,
      'unknown',
    );
  }
  ledger.settle(offer.paymentHash, { preimage, feeSats: payment.feeSats, settleMs });
  return { preimage, receipt: { feeSats: payment.feeSats, paymentHash: offer.paymentHash, settleMs } };
}

type Send = ((url: string, token?: StoredToken) => Promise<Response>) & { url: string };

/** The request, with its body read once so it can be sent again after paying. */
async function replayable(
  input: string | URL | Request,
  init: RequestInit | undefined,
  fetchImpl: typeof globalThis.fetch,
): Promise<Send> {
  const request = new Request(input, init);
  const body = request.body ? await request.arrayBuffer() : undefined;
  const send = (url: string, token?: StoredToken) => {
    const headers = new Headers(request.headers);
    if (token) headers.set('authorization', `${token.scheme} ${token.macaroon}:${token.preimage}`);
    return fetchImpl(url, {
      ...init,
      method: request.method,
      headers,
      body,
      redirect: request.redirect,
      signal: init?.signal ?? request.signal,
    });
  };
  return Object.assign(send, { url: request.url });
}
