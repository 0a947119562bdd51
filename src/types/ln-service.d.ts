// The few ln-service calls Plannt makes; the package ships no types.
declare module 'ln-service' {
  export interface AuthenticatedLnd {
    readonly [server: string]: unknown;
  }
  export function authenticatedLndGrpc(args: { cert?: string; macaroon: string; socket: string }): {
    lnd: AuthenticatedLnd;
  };
  export function createInvoice(args: {
    lnd: AuthenticatedLnd;
    tokens: number;
    description?: string;
    expires_at?: string;
    secret?: string;
  }): Promise<{ id: string; request: string; tokens: number; created_at: string; secret?: string }>;
  export function getInvoices(args: {
    lnd: AuthenticatedLnd;
    limit?: number;
  }): Promise<{ invoices: unknown[] }>;
  /** An invoice_updated event of subscribeToInvoices (the fields Plannt reads). */
  export interface SubscribedInvoice {
    id: string;
    is_confirmed: boolean;
    confirmed_index?: number;
    received: number;
    description?: string;
  }
  /** Emits invoice_updated (SubscribedInvoice), error and end; removing every listener cancels the stream. */
  export function subscribeToInvoices(args: {
    lnd: AuthenticatedLnd;
    confirmed_after?: number;
    restart_delay_ms?: number;
  }): import('node:events').EventEmitter;
  export function getWalletInfo(args: {
    lnd: AuthenticatedLnd;
  }): Promise<{ public_key: string; alias: string; chains?: string[] }>;
  export function parsePaymentRequest(args: { request: string }): {
    id: string;
    tokens: number;
    expires_at: string;
    network: string;
    description?: string;
  };
  export function pay(args: {
    lnd: AuthenticatedLnd;
    request: string;
    max_fee?: number;
    pathfinding_timeout?: number;
  }): Promise<{ secret: string; id: string; tokens: number; fee: number; safe_fee?: number }>;
}
