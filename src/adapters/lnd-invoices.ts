/**
 * Invoice backend on LND through ln-service. Needs only an invoice macaroon (`invoices:read invoices:write`):
 * createInvoice adds and then looks up the invoice, and the readiness probe lists one invoice.
 */
import { authenticatedLndGrpc, createInvoice, getInvoices } from 'ln-service';
import { DependencyUnavailable, type InvoiceBackend, type NewInvoice } from '../core/ports';
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
}

export function lndInvoiceBackend(options: LndOptions): InvoiceBackend {
  const { lnd } = authenticatedLndGrpc({
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
    async close() {
      await withTimeout(
        Promise.allSettled(inflight),
        options.closeGraceMs,
        () => new Error('LND calls still running'),
      ).catch(() => {});
      // ln-service opens one gRPC client per LND sub-server; close them all so the process can exit.
      for (const client of Object.values(lnd)) (client as { close?: () => void }).close?.();
    },
  };
}
