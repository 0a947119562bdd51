/**
 * The agent-side commands of `plannt`: `fetch` (one HTTP request that pays its 402 within caps) and `mcp`
 * (the same client as an MCP server over stdio). Exit codes of `fetch` are part of its interface (README).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { BudgetLimits } from './client/budget';
import { BudgetExceededError, ChallengeError, PaymentError } from './client/errors';
import type { L402Client } from './client/fetch';
import { SpendLedger } from './client/ledger';
import { isNetwork, NETWORKS, type Network } from './client/network';
import { fileTokenStore, type TokenStore } from './client/token-store';
import type { Wallet } from './client/wallet';
import { devWallet } from './client/wallets/dev';

export const FETCH_EXIT = {
  ok: 0,
  /** Usage errors are commander's (1), as are unexpected failures. */
  failure: 1,
  budgetExceeded: 3,
  challengeRefused: 4,
  paymentFailed: 5,
  httpError: 6,
  requestFailed: 7,
} as const;

interface WalletFlags {
  wallet: 'dev' | 'lnd';
  devPayUrl: string;
  lndSocket?: string;
  lndCertFile?: string;
  lndMacaroonFile?: string;
  network?: Network;
}

interface BudgetFlags {
  maxSats?: number;
  maxTotalSats?: number;
  maxHostSats?: number;
  windowSats?: number;
  windowSeconds: number;
  maxFeeSats?: number;
  ledger?: string;
  recordPreimages?: boolean;
}

const sats = (flag: string) => (value: string) => {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError(`${flag} must be a whole number of sats`);
  }
  return Number(value);
};

function walletAndBudgetOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--wallet <kind>', 'how to pay').choices(['dev', 'lnd']).default('dev'))
    .option('--dev-pay-url <url>', "dev wallet: Plannt's admin /dev/pay", 'http://127.0.0.1:9090/dev/pay')
    .option('--lnd-socket <host:port>', "lnd wallet: LND's gRPC address")
    .option('--lnd-cert-file <file>', "lnd wallet: LND's tls.cert (omit if publicly trusted)")
    .option(
      '--lnd-macaroon-file <file>',
      'lnd wallet: a macaroon that may pay (offchain:read offchain:write info:read)',
    )
    .addOption(
      new Option(
        '--network <name>',
        'network the wallet pays on (default: dev regtest, lnd asks the node)',
      ).choices([...NETWORKS]),
    )
    .option('--max-host-sats <n>', 'most all payments to one host may cost', sats('--max-host-sats'))
    .option('--window-sats <n>', 'most the payments of any --window-seconds may cost', sats('--window-sats'))
    .option('--window-seconds <s>', 'length of the sliding window', sats('--window-seconds'), 86_400)
    .option(
      '--max-fee-sats <n>',
      'most the routing fee of one payment may be (within the caps)',
      sats('--max-fee-sats'),
    )
    .option('--ledger <file>', 'record payments in this JSON-lines file and count the caps across runs')
    .option(
      '--record-preimages',
      'also write preimages to the ledger file (they are bearer proofs of payment)',
    );
}

async function makeWallet(flags: WalletFlags): Promise<Wallet> {
  if (flags.wallet === 'dev') {
    return devWallet({ payUrl: flags.devPayUrl, ...(flags.network && { network: flags.network }) });
  }
  if (!flags.lndSocket || !flags.lndMacaroonFile) {
    throw new InvalidArgumentError('--wallet lnd needs --lnd-socket and --lnd-macaroon-file');
  }
  // Loaded here, as the client below: `plannt serve` and the other commands do without ln-service.
  const { lndWallet, lndWalletOptionsFromFiles } = await import('./client/wallets/lnd');
  return lndWallet(
    lndWalletOptionsFromFiles({
      socket: flags.lndSocket,
      macaroonFile: flags.lndMacaroonFile,
      ...(flags.lndCertFile && { certFile: flags.lndCertFile }),
      ...(flags.network && isNetwork(flags.network) && { network: flags.network }),
    }),
  );
}

function budgetOf(flags: BudgetFlags, perRequest: number, total: number): BudgetLimits {
  return {
    maxPerRequestSats: perRequest,
    maxTotalSats: total,
    ...(flags.maxHostSats !== undefined && { maxPerHostSats: flags.maxHostSats }),
    ...(flags.windowSats !== undefined && {
      window: { seconds: flags.windowSeconds, maxSats: flags.windowSats },
    }),
  };
}

function ledgerOf(flags: BudgetFlags): SpendLedger {
  return new SpendLedger({
    ...(flags.ledger && { file: flags.ledger }),
    ...(flags.recordPreimages && { recordPreimages: true }),
  });
}

async function clientOf(
  flags: WalletFlags & BudgetFlags,
  budget: BudgetLimits,
  wallet: Wallet,
  tokenStore?: TokenStore,
): Promise<L402Client> {
  const { createL402Client } = await import('./client/fetch');
  // Without a store of its own the client keeps tokens in memory: an MCP session reuses a bundle or pass.
  return createL402Client({
    wallet,
    budget,
    ledger: ledgerOf(flags),
    ...(tokenStore && { tokenStore }),
    ...(flags.maxFeeSats !== undefined && { maxFeeSats: flags.maxFeeSats }),
  });
}

export function registerAgentCommands(program: Command): void {
  walletAndBudgetOptions(
    program
      .command('fetch <url>')
      .description(
        'send an HTTP request, paying an L402 402 within the caps; body to stdout, receipt to stderr',
      )
      .option('-X, --method <method>', 'HTTP method (default GET, or POST with -d)')
      .option('-H, --header <header...>', 'request header "Name: value"', [])
      .option('-d, --data <body>', 'request body')
      .requiredOption('--max-sats <n>', 'most this request may cost, fees included', sats('--max-sats'))
      .option(
        '--max-total-sats <n>',
        'most all payments may cost (with --ledger, across runs)',
        sats('--max-total-sats'),
      )
      .option('--dry-run', 'show what would be paid, pay nothing')
      .option(
        '--tokens <file>',
        'keep paid tokens in this file (mode 0600: it holds preimages) and reuse them across runs until used up or expired',
      ),
  ).action(fetchCommand);

  walletAndBudgetOptions(
    program
      .command('mcp')
      .description('serve the Model Context Protocol over stdio: tools paid_fetch and spending_report')
      .requiredOption('--max-total-sats <n>', 'the budget of the whole session', sats('--max-total-sats'))
      .option('--max-sats <n>', 'most one request may cost (default: the total)', sats('--max-sats')),
  ).action(mcpCommand);
}

type FetchFlags = WalletFlags &
  BudgetFlags & {
    method?: string;
    header: string[];
    data?: string;
    maxSats: number;
    dryRun?: boolean;
    tokens?: string;
  };

async function fetchCommand(url: string, flags: FetchFlags): Promise<void> {
  const fail = (code: number, message: string) => {
    process.stderr.write(`plannt: ${message}\n`);
    process.exitCode = code;
  };
  const headers = new Headers();
  for (const h of flags.header) {
    const colon = h.indexOf(':');
    if (colon <= 0) return fail(FETCH_EXIT.failure, `-H expects "Name: value", got "${h}"`);
    headers.append(h.slice(0, colon).trim(), h.slice(colon + 1).trim());
  }
  const method = flags.method ?? (flags.data !== undefined ? 'POST' : 'GET');
  let wallet: Wallet;
  try {
    wallet = await makeWallet(flags);
  } catch (err) {
    return fail(FETCH_EXIT.failure, (err as Error).message);
  }
  const client = await clientOf(
    flags,
    budgetOf(flags, flags.maxSats, flags.maxTotalSats ?? flags.maxSats),
    wallet,
    flags.tokens ? fileTokenStore(flags.tokens) : undefined,
  );
  try {
    const result = await client.request(
      url,
      { method, headers, ...(flags.data !== undefined && { body: flags.data }) },
      { dryRun: Boolean(flags.dryRun) },
    );
    if (result.wouldPay) {
      const { offer, maxFeeSats, allowance } = result.wouldPay;
      process.stdout.write(
        `${JSON.stringify({ would_pay_sats: offer.amountSats, max_fee_sats: maxFeeSats, allowance_sats: allowance.sats, host: new URL(result.response.url || url).host, payment_hash: offer.paymentHash, network: offer.network, expires_at: offer.expiresAt.toISOString(), description: offer.description ?? null, invoice: offer.invoice }, null, 2)}\n`,
      );
      process.stderr.write(
        `plannt: dry run: would pay ${offer.amountSats} sats (fee at most ${maxFeeSats}); paid nothing\n`,
      );
      return;
    }
    const { response, receipt } = result;
    process.stdout.write(Buffer.from(await response.arrayBuffer()));
    process.stderr.write(
      receipt
        ? `plannt: HTTP ${response.status} · paid ${receipt.amountSats} sats + ${receipt.feeSats} fee to ${receipt.host} · payment hash ${receipt.paymentHash} · settled in ${receipt.settleMs} ms\n`
        : `plannt: HTTP ${response.status} · paid nothing\n`,
    );
    if (response.status >= 400) process.exitCode = FETCH_EXIT.httpError;
  } catch (err) {
    if (err instanceof BudgetExceededError) return fail(FETCH_EXIT.budgetExceeded, err.message);
    if (err instanceof ChallengeError)
      return fail(FETCH_EXIT.challengeRefused, `refused to pay: ${err.message}`);
    if (err instanceof PaymentError) return fail(FETCH_EXIT.paymentFailed, `payment failed: ${err.message}`);
    if (err instanceof TypeError) {
      const cause = (err as Error).cause;
      return fail(
        FETCH_EXIT.requestFailed,
        `request failed: ${err.message}${cause ? ` (${String(cause)})` : ''}`,
      );
    }
    throw err;
  } finally {
    await wallet.close?.();
  }
}

async function mcpCommand(flags: WalletFlags & BudgetFlags & { maxTotalSats: number }): Promise<void> {
  let wallet: Wallet;
  try {
    wallet = await makeWallet(flags);
  } catch (err) {
    process.stderr.write(`plannt: ${(err as Error).message}\n`);
    process.exitCode = FETCH_EXIT.failure;
    return;
  }
  const budget = budgetOf(flags, flags.maxSats ?? flags.maxTotalSats, flags.maxTotalSats);
  // Loaded here so `plannt serve` does not pay for the MCP SDK at start.
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  const { createPaidFetchServer } = await import('./mcp/server');
  const server = createPaidFetchServer({ client: await clientOf(flags, budget, wallet), budget });
  await server.connect(new StdioServerTransport());
  // The host ends the session by closing our stdin.
  const stop = () => {
    void Promise.allSettled([server.close(), wallet.close?.()]).then(() => process.exit(0));
  };
  process.stdin.once('end', stop);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
