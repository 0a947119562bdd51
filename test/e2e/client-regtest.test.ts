/**
 * The agent side over real Lightning: l402Fetch with the lnd wallet on bob pays alice's real invoice over the
 * bob → alice regtest channel (test/regtest), through Plannt on alice (invoice-only macaroon) behind the
 * ext_authz proxy. Needs the binaries test/regtest/build-tools.sh builds; without them the suite fails saying so.
 */

import { spawn } from 'node:child_process';
import path from 'node:path';
import { createL402Client, lndWallet, type Wallet } from '../../src/client';
import { lndCredentials, type RegtestNetwork, startNetwork, stopNetwork } from '../regtest/network';
import { type AuthzProxy, startEchoUpstream, startExtAuthzProxy } from '../support/ext-authz-proxy';
import { type Plannt, startPlannt } from '../support/plannt';

// Start-up (btcd, two lnd, mining, a channel) takes 20–60 s on 2 busy cores.
jest.setTimeout(120_000);

const CLI = path.join(__dirname, '../../dist/src/cli.js');

describe('l402Fetch pays a real invoice with the lnd wallet (regtest)', () => {
  let net: RegtestNetwork;
  let plannt: Plannt;
  let upstream: { url: string; close(): Promise<void> };
  let proxy: AuthzProxy;
  let wallet: Wallet;

  beforeAll(async () => {
    net = await startNetwork();
    plannt = await startPlannt({
      backend: {
        kind: 'lnd',
        timeout_ms: 3000,
        lnd: {
          socket: net.alice.socket,
          cert_file: net.alice.certPath,
          macaroon_file: net.alice.invoiceMacaroonPath,
        },
      },
    });
    upstream = await startEchoUpstream();
    proxy = await startExtAuthzProxy(plannt.client, upstream.url);
    const bob = lndCredentials(net.bob);
    wallet = lndWallet({ socket: bob.socket, certBase64: bob.cert, macaroon: bob.macaroon });
  }, 240_000);

  afterAll(async () => {
    await wallet?.close?.();
    await proxy?.close();
    await upstream?.close();
    await plannt?.stop();
    if (net) await stopNetwork(net);
  });

  it('reads the network from the node: regtest', async () => {
    expect(await wallet.network()).toBe('regtest');
  });

  it('pays over the channel, retries with the preimage and reaches the upstream; the ledger has the payment', async () => {
    const client = createL402Client({ wallet, budget: { maxPerRequestSats: 20, maxTotalSats: 100 } });
    const { response, receipt } = await client.request(`${proxy.url}/v1/forecast?city=quito`);
    expect(response.status).toBe(200);
    const echoed = (await response.json()) as { headers: Record<string, string> };
    expect(echoed.headers['x-plannt-amount-sats']).toBe('10');
    expect(echoed.headers['x-plannt-payment-hash']).toBe(receipt?.paymentHash);
    // A direct channel: no routing fee.
    expect(receipt).toMatchObject({ amountSats: 10, feeSats: 0 });
    expect(client.report()).toMatchObject({ totalSats: 10, paidSats: 10, payments: 1 });
  });

  it('buys a 5-use bundle once, makes 5 paid requests on that one payment, and re-buys on the 6th', async () => {
    // Envoy's per-route config sells this route as 5-use bundles at the route's price.
    const bundles = await startExtAuthzProxy(plannt.client, upstream.url, {
      context: { 'plannt.uses': '5' },
    });
    try {
      const client = createL402Client({ wallet, budget: { maxPerRequestSats: 20, maxTotalSats: 100 } });
      const left: (string | null)[] = [];
      const receipts: (string | undefined)[] = [];
      for (let i = 0; i < 6; i++) {
        const { response, receipt } = await client.request(`${bundles.url}/v1/forecast?call=${i}`);
        expect(response.status).toBe(200);
        left.push(response.headers.get('x-l402-uses-remaining'));
        receipts.push(receipt?.paymentHash);
        await response.body?.cancel();
      }
      expect(left).toEqual(['4', '3', '2', '1', '0', '4']);
      // Paid on the first request and on the sixth, nothing in between.
      expect(receipts.map((r) => r !== undefined)).toEqual([true, false, false, false, false, true]);
      expect(client.report()).toMatchObject({ payments: 2, paidSats: 20, feeSats: 0 });
      expect(client.ledger.entries().map((e) => e.status)).toEqual(['paid', 'paid']);
    } finally {
      await bundles.close();
    }
  });

  it('stops before paying when the total is spent: nothing leaves bob', async () => {
    const client = createL402Client({ wallet, budget: { maxPerRequestSats: 10, maxTotalSats: 15 } });
    expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
    await expect(client.fetch(`${proxy.url}/v1/forecast`)).rejects.toMatchObject({
      code: 'budget_exceeded',
      limit: 'total',
    });
    expect(client.ledger.entries()).toHaveLength(1);
  });

  it('plannt fetch --wallet lnd pays with bob’s files and prints the receipt', async () => {
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(process.execPath, [
          CLI,
          'fetch',
          `${proxy.url}/v1/forecast`,
          '--max-sats',
          '10',
          '--wallet',
          'lnd',
          '--lnd-socket',
          net.bob.socket,
          '--lnd-cert-file',
          net.bob.certPath,
          '--lnd-macaroon-file',
          net.bob.adminMacaroonPath,
        ]);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
        });
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString();
        });
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`plannt fetch did not exit in 60 s: ${stderr}`));
        }, 60_000);
        child.on('close', (status) => {
          clearTimeout(timer);
          resolve({ status, stdout, stderr });
        });
      },
    );
    expect(run.stderr).toMatch(
      /^plannt: HTTP 200 · paid 10 sats \+ 0 fee to .* · payment hash [0-9a-f]{64} · settled in \d+ ms$/m,
    );
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ headers: { 'x-plannt-amount-sats': '10' } });
  });
});
