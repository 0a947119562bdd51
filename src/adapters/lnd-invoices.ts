/**
 * Invoice backend on LND through ln-service's methods, over a client of LND's Lightning service alone
 * (lnd-grpc.ts). Needs only an invoice macaroon (`invoices:read invoices:write`):
 * createInvoice adds and then looks up the invoice, the readiness probe lists one invoice, and the
 * settlement watch subscribes to invoice updates.
 */
import type { EventEmitter } from 'node:events';
import { createInvoice, getInvoices, type SubscribedInvoice, subscribeToInvoices } from 'ln-service';
import { DependencyUnavailable, type InvoiceBackend, type NewInvoice, type Settlement } from '../core/ports';
import { type Backoff, backoffDelay } from './backoff';
import { type LightningService, lightningService } from './lnd-grpc';
import { withTimeout } from './timeout';

export interface LndOptions {
  socket: string;
  /** Base64 of the TLS certificate PEM, as ln-service takes it; absent when LND's cert is publicly trusted. */
  certBase64?: string;
  /** Base64 or hex of the macaroon. */
  macaroon: string;
  probeTimeoutMs: number;
  /** How long close() waits for calls still in flight. */
  closeGraceMs: number;
  /** Reconnect delays of the settlement stream after it drops. */
  reconnect?: Backoff;
  /** Told each time the settlement stream drops, with the delay before the next attempt. */
  onWatchError?: (err: unknown, retryInMs: number) => void;
}

const DEFAULT_RECONNECT: Backoff = { minMs: 250, maxMs: 10_000 };

export function lndInvoiceBackend(options: LndOptions): InvoiceBackend {
  const lnd = lightningService({
    socket: options.socket,
    macaroon: options.macaroon,
    ...(options.certBase64 && { cert: options.certBase64 }),
  });
  const unavailable = (what: string) => (err: unknown) => {
    throw err instanceof DependencyUnavailable
      ? err
      : new DependencyUnavailable('invoice_backend', what, { cause: err });
  };
  const timedOut = (ms: number) => () =>
    new DependencyUnavailable('invoice_backend', `LND did not answer in ${ms} ms`);
  // Calls outlive our timeouts (ln-service chains AddInvoice → LookupInvoice); close() waits for them,
  // because a follow-up call on a closed client throws where nothing can catch it.
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(call: Promise<T>): Promise<T> => {
    inflight.add(call);
    const forget = () => inflight.delete(call);
    call.then(forget, forget);
    return call;
  };
  const watchers = new Set<() => void>();

  return {
    name: 'lnd',
    async createInvoice(amountSats, memo, expirySeconds, timeoutMs): Promise<NewInvoice> {
      const expiresAt = new Date(Date.now() + expirySeconds * 1000);
      const created = await withTimeout(
        track(
          createInvoice({ lnd, tokens: amountSats, description: memo, expires_at: expiresAt.toISOString() }),
        ),
        timeoutMs,
        timedOut(timeoutMs),
      ).catch(unavailable('LND failed to create an invoice'));
      return { paymentRequest: created.request, paymentHash: Buffer.from(created.id, 'hex'), expiresAt };
    },
    async probe() {
      await withTimeout(
        track(getInvoices({ lnd, limit: 1 })),
        options.probeTimeoutMs,
        timedOut(options.probeTimeoutMs),
      ).catch(unavailable('LND is unreachable'));
    },
    watchSettlements(onSettled) {
      const stop = watchSettlements(lnd, onSettled, options);
      const stopAndForget = () => {
        watchers.delete(stopAndForget);
        stop();
      };
      watchers.add(stopAndForget);
      return stopAndForget;
    },
    async close() {
      for (const stop of [...watchers]) stop();
      await withTimeout(
        Promise.allSettled(inflight),
        options.closeGraceMs,
        () => new Error('LND calls still running'),
      ).catch(() => {});
      lnd.default.close();
    },
  };
}

/**
 * Follows LND's invoice stream. ln-service restarts a stream that ends cleanly (after restart_delay_ms);
 * a stream that fails is cancelled here and opened again after a growing, jittered delay, from the last
 * settle index seen, so settlements made while it was down are reported once it is back, and none twice.
 */
function watchSettlements(
  lnd: LightningService,
  onSettled: (settlement: Settlement) => void,
  options: LndOptions,
): () => void {
  const reconnect = options.reconnect ?? DEFAULT_RECONNECT;
  let stopped = false;
  let failures = 0;
  let settleIndex: number | undefined;
  let stream: EventEmitter | undefined;
  let timer: NodeJS.Timeout | undefined;

  const settled = (invoice: SubscribedInvoice) => {
    failures = 0;
    const index = invoice.confirmed_index;
    if (!invoice.is_confirmed || index === undefined) return;
    if (settleIndex !== undefined && index <= settleIndex) return;
    settleIndex = index;
    onSettled({ sats: invoice.received, memo: invoice.description ?? '' });
  };

  const retry = (err: unknown, openedAt: number) => {
    if (stopped) return;
    // A stream that stayed up longer than the longest delay was healthy: start the backoff over.
    if (Date.now() - openedAt >= reconnect.maxMs) failures = 0;
    const delay = backoffDelay(failures++, reconnect);
    options.onWatchError?.(err, delay);
    timer = setTimeout(open, delay);
    timer.unref();
  };

  const open = () => {
    if (stopped) return;
    const openedAt = Date.now();
    let sub: EventEmitter;
    try {
      sub = subscribeToInvoices({
        lnd,
        restart_delay_ms: reconnect.minMs,
        ...(settleIndex !== undefined && { confirmed_after: settleIndex }),
      });
    } catch (err) {
      return retry(err, openedAt);
    }
    stream = sub;
    sub.on('invoice_updated', settled);
    sub.on('error', (err: unknown) => {
      // Removing every listener cancels the gRPC stream and stops ln-service's own fixed-delay restart.
      sub.removeAllListeners();
      if (stream === sub) stream = undefined;
      retry(err, openedAt);
    });
  };

  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    stream?.removeAllListeners();
    stream = undefined;
  };
}
