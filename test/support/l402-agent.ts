/**
 * The agent's side of L402, written with libraries independent of Plannt: @getalby/lightning-tools parses
 * the WWW-Authenticate challenge and decodes the BOLT11 invoice, the `macaroon` package decodes the token,
 * and ln-service pays from the agent's own LND node. The end-to-end tests and the demo both use it.
 */
import { createHash } from 'node:crypto';
import { Invoice, parseL402 } from '@getalby/lightning-tools';
import { type AuthenticatedLnd, pay } from 'ln-service';

interface JsMacaroon {
  readonly location: string;
  readonly identifier: Uint8Array;
  readonly caveats: Array<{ identifier: Uint8Array }>;
}
const { importMacaroon } = require('macaroon') as { importMacaroon(bytes: string): JsMacaroon };

export interface L402Challenge {
  /** `L402` or `LSAT`. */
  scheme: string;
  /** Base64, as sent. */
  macaroon: string;
  invoice: Invoice;
  /** What the macaroon says, decoded by the `macaroon` package. */
  token: { location: string; paymentHash: string; caveats: string[] };
}

/** Parses one WWW-Authenticate value; throws unless it is an L402/LSAT challenge with a decodable invoice. */
export function readChallenge(header: string): L402Challenge {
  const scheme = header.split(' ', 1)[0] ?? '';
  const params = parseL402(header);
  const macaroon = params.macaroon ?? params.token;
  if (!/^(L402|LSAT)$/.test(scheme) || !macaroon || !params.invoice) {
    throw new Error(`not an L402 challenge: ${header}`);
  }
  const decoded = importMacaroon(macaroon);
  const identifier = Buffer.from(decoded.identifier);
  if (identifier.readUInt16BE(0) !== 0) throw new Error('unknown L402 identifier version');
  return {
    scheme,
    macaroon,
    invoice: new Invoice({ pr: params.invoice }),
    token: {
      location: decoded.location,
      // L402 version 0: uint16 version | payment_hash[32] | token_id[32].
      paymentHash: identifier.subarray(2, 34).toString('hex'),
      caveats: decoded.caveats.map((c) => Buffer.from(c.identifier).toString('utf8')),
    },
  };
}

export interface Payment {
  preimage: string;
  feeSats: number;
  ms: number;
}

/** Pays the invoice from the agent's node and checks the preimage against the invoice's payment hash. */
export async function payInvoice(lnd: AuthenticatedLnd, invoice: Invoice, maxFeeSats = 10): Promise<Payment> {
  const started = performance.now();
  const paid = await pay({ lnd, request: invoice.paymentRequest, max_fee: maxFeeSats });
  const ms = performance.now() - started;
  if (!invoice.validatePreimage(paid.secret)) throw new Error('the preimage does not match the invoice');
  return { preimage: paid.secret, feeSats: paid.fee, ms };
}

export function l402Authorization(macaroon: string, preimage: string): string {
  return `L402 ${macaroon}:${preimage}`;
}

export function sha256Hex(hex: string): string {
  return createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');
}
