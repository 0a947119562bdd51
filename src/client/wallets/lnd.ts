/**
 * A wallet on an LND node through ln-service: `pay` (SendPaymentV2 under the hood, waits for the outcome)
 * with the fee capped, and the network read from the node unless given. Needs a macaroon that may pay
 * (`offchain:read offchain:write`, plus `info:read` when the network is detected).
 */
import { readFileSync } from 'node:fs';
import { type AuthenticatedLnd, authenticatedLndGrpc, getWalletInfo, pay } from 'ln-service';
import { PaymentError } from '../errors';
import { type Network, networkOfChain } from '../network';
import type { Wallet } from '../wallet';

export interface LndWalletOptions {
  /** `host:port` of LND's gRPC. */
  socket: string;
  /** Base64 of the TLS certificate (PEM or DER); omit when it is publicly trusted. */
  certBase64?: string;
  /** Hex or base64 of the macaroon. */
  macaroon: string;
  /** Skips asking the node. */
  network?: Network;
  /** How long LND may search for a route, in ms. */
  pathfindingTimeoutMs?: number;
}

/** The options from files, as the CLI takes them. */
export function lndWalletOptionsFromFiles(args: {
  socket: string;
  certFile?: string;
  macaroonFile: string;
  network?: Network;
}): LndWalletOptions {
  return {
    socket: args.socket,
    macaroon: readFileSync(args.macaroonFile).toString('base64'),
    ...(args.certFile && { certBase64: readFileSync(args.certFile).toString('base64') }),
    ...(args.network && { network: args.network }),
  };
}

export function lndWallet(options: LndWalletOptions): Wallet {
  const { lnd } = authenticatedLndGrpc({
    socket: options.socket,
    macaroon: options.macaroon,
    ...(options.certBase64 && { cert: options.certBase64 }),
  });
  let network: Promise<Network> | undefined = options.network && Promise.resolve(options.network);

  return {
    name: 'lnd',
    network() {
      network ??= detectNetwork(lnd);
      return network;
    },
    async pay(invoice, limits) {
      try {
        const paid = await pay({
          lnd,
          request: invoice,
          max_fee: limits.maxFeeSats,
          ...(options.pathfindingTimeoutMs && { pathfinding_timeout: options.pathfindingTimeoutMs }),
        });
        return { preimage: Buffer.from(paid.secret, 'hex'), feeSats: paid.safe_fee ?? paid.fee };
      } catch (err) {
        throw new PaymentError('payment_failed', `lnd wallet: ${describe(err)}`, settledOf(err), {
          cause: err,
        });
      }
    },
    async close() {
      for (const client of Object.values(lnd)) (client as { close?: () => void }).close?.();
    },
  };
}

async function detectNetwork(lnd: AuthenticatedLnd): Promise<Network> {
  let chains: string[] | undefined;
  try {
    chains = (await getWalletInfo({ lnd })).chains;
  } catch (err) {
    throw new PaymentError(
      'payment_failed',
      `lnd wallet: cannot read the node's network: ${describe(err)}`,
      'no',
      {
        cause: err,
      },
    );
  }
  const network = (chains ?? []).map(networkOfChain).find((n) => n !== undefined);
  if (!network)
    throw new PaymentError('payment_failed', `lnd wallet: unknown chain ${JSON.stringify(chains)}`, 'no');
  return network;
}

/** ln-service rejects with `[code, 'Message', details]`. */
function describe(err: unknown): string {
  if (Array.isArray(err)) return `${err[0]} ${err[1]}`;
  return err instanceof Error ? err.message : String(err);
}

/** LND's final "failed" states, as ln-service names them: the payment is over and moved no money. */
const NOT_PAID = new Set([
  'PaymentExecutionCanceled',
  'InsufficientBalanceToAttemptPayment',
  'PaymentRejectedByDestination',
  'PaymentAttemptsTimedOut',
  'PaymentPathfindingFailedToFindPossibleRoute',
  'FailedToFindPayableRouteToDestination',
]);

/**
 * ln-service's pay waits for LND's final answer, so a failure it names as final, or an argument it refused
 * (400, or a thrown `Expected…`), moved no money. Anything else (a connection lost mid-payment) might have.
 */
function settledOf(err: unknown): 'no' | 'unknown' {
  if (Array.isArray(err)) return err[0] === 400 || NOT_PAID.has(String(err[1])) ? 'no' : 'unknown';
  return err instanceof Error && err.message.startsWith('Expected') ? 'no' : 'unknown';
}
