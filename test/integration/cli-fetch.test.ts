/**
 * `plannt fetch`, the compiled CLI as an agent's shell would run it, against a Plannt-protected upstream
 * (dev backend behind the ext_authz proxy): body on stdout, one receipt line on stderr, documented exit codes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type AuthzProxy, startEchoUpstream, startExtAuthzProxy } from '../support/ext-authz-proxy';
import { metricValue, type Plannt, startPlannt } from '../support/plannt';

// `npm test` builds before jest runs.
const CLI = path.join(__dirname, '../../dist/src/cli.js');
const dir = mkdtempSync(path.join(tmpdir(), 'plannt-fetch-'));

let plannt: Plannt;
let upstream: { url: string; close(): Promise<void> };
let proxy: AuthzProxy;
let devPay: string[];

beforeAll(async () => {
  plannt = await startPlannt();
  upstream = await startEchoUpstream();
  proxy = await startExtAuthzProxy(plannt.client, upstream.url);
  devPay = ['--dev-pay-url', `${plannt.adminUrl}/dev/pay`];
});
afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await plannt?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process, which serves the Plannt it talks to. */
function plannt_(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`plannt ${args.join(' ')} did not exit in 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const paidChecks = async () =>
  metricValue(await plannt.metrics(), 'plannt_checks_total', { decision: 'allow', reason: 'paid' });

describe('plannt fetch', () => {
  it('pays, prints the body to stdout and a receipt line to stderr, exits 0', async () => {
    const run = await plannt_(['fetch', `${proxy.url}/v1/forecast?city=oslo`, '--max-sats', '10', ...devPay]);
    expect(run.status).toBe(0);
    const body = JSON.parse(run.stdout) as { path: string; headers: Record<string, string> };
    expect(body.path).toBe('/v1/forecast?city=oslo');
    expect(body.headers['x-plannt-amount-sats']).toBe('10');
    const hash = body.headers['x-plannt-payment-hash'];
    expect(run.stderr).toMatch(
      new RegExp(
        `^plannt: HTTP 200 · paid 10 sats \\+ 0 fee to 127\\.0\\.0\\.1:\\d+ · payment hash ${hash} · settled in \\d+ ms\\n$`,
      ),
    );
  });

  it('sends -X, -H and -d, and the body again after paying', async () => {
    const run = await plannt_([
      'fetch',
      `${proxy.url}/v1/history`,
      '-X',
      'PUT',
      '-H',
      'Content-Type: application/json',
      '-H',
      'X-Trace: abc',
      '-d',
      '{"days":3}',
      '--max-sats',
      '10',
      ...devPay,
    ]);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      method: 'PUT',
      body: '{"days":3}',
      headers: { 'content-type': 'application/json', 'x-trace': 'abc' },
    });
  });

  it('--dry-run prints what it would pay and pays nothing (exit 0)', async () => {
    const before = await paidChecks();
    const run = await plannt_([
      'fetch',
      `${proxy.url}/v1/forecast`,
      '--max-sats',
      '50',
      '--dry-run',
      ...devPay,
    ]);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      would_pay_sats: 10,
      allowance_sats: 50,
      network: 'regtest',
    });
    expect(run.stderr).toContain('dry run: would pay 10 sats');
    expect(await paidChecks()).toBe(before);
  });

  it('exits 3 when the price is over --max-sats, printing why and nothing on stdout', async () => {
    const run = await plannt_(['fetch', `${proxy.url}/v1/forecast`, '--max-sats', '9', ...devPay]);
    expect(run.status).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(
      'budget exceeded: the invoice asks for 10 sats and the per-request maximum allows 9',
    );
  });

  it('exits 3 on the run that would pass --max-total-sats of a --ledger file, and keeps preimages out of it', async () => {
    const ledger = path.join(dir, 'spend.jsonl');
    const args = ['--max-sats', '10', '--max-total-sats', '15', '--ledger', ledger, ...devPay];
    const first = await plannt_(['fetch', `${proxy.url}/v1/forecast`, ...args]);
    expect(first.status).toBe(0);
    const second = await plannt_(['fetch', `${proxy.url}/v1/forecast`, ...args]);
    expect(second.status).toBe(3);
    expect(second.stderr).toContain('total budget allows 5 more sats');
    const lines = readFileSync(ledger, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toMatchObject({ status: 'paid', amountSats: 10 });
    expect(lines.every((l) => !('preimage' in l))).toBe(true);
  });

  it('exits 4 when the invoice is for another network than the wallet', async () => {
    const run = await plannt_([
      'fetch',
      `${proxy.url}/v1/forecast`,
      '--max-sats',
      '10',
      '--network',
      'bitcoin',
      ...devPay,
    ]);
    expect(run.status).toBe(4);
    expect(run.stderr).toContain('refused to pay: the invoice is for regtest, the wallet pays on bitcoin');
  });

  it('exits 5 when the payment fails', async () => {
    const run = await plannt_([
      'fetch',
      `${proxy.url}/v1/forecast`,
      '--max-sats',
      '10',
      '--dev-pay-url',
      `${plannt.adminUrl}/no-such-endpoint`,
    ]);
    expect(run.status).toBe(5);
    expect(run.stderr).toMatch(/payment failed: dev wallet: .* answered 404/);
  });

  it('exits 6 on an HTTP error, still printing its body', async () => {
    const run = await plannt_(['fetch', `${proxy.url}/admin`, '--max-sats', '10', ...devPay]);
    expect(run.status).toBe(6);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: 'unmatched_route' });
    expect(run.stderr).toBe('plannt: HTTP 403 · paid nothing\n');
  });

  it('exits 7 when the server cannot be reached', async () => {
    const run = await plannt_([
      'fetch',
      `http://127.0.0.1:${await closedPort()}/`,
      '--max-sats',
      '10',
      ...devPay,
    ]);
    expect(run.status).toBe(7);
    expect(run.stderr).toContain('request failed');
  });

  it('refuses --wallet lnd without its connection flags (exit 1)', async () => {
    const run = await plannt_(['fetch', `${proxy.url}/v1/forecast`, '--max-sats', '10', '--wallet', 'lnd']);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('--wallet lnd needs --lnd-socket and --lnd-macaroon-file');
  });
});

/** A port nothing listens on: bound, then released. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('plannt fetch --tokens', () => {
  let bundles: AuthzProxy;
  beforeAll(async () => {
    bundles = await startExtAuthzProxy(plannt.client, upstream.url, { context: { 'plannt.uses': '3' } });
  });
  afterAll(() => bundles?.close());

  it('reuses a 3-use bundle across runs: one payment for three runs, a new one on the fourth; the file is 0600', async () => {
    const tokens = path.join(dir, 'tokens.json');
    const ledger = path.join(dir, 'bundle-ledger.jsonl');
    const receipts: string[] = [];
    for (let i = 0; i < 4; i++) {
      const run = await plannt_([
        'fetch',
        `${bundles.url}/v1/forecast?run=${i}`,
        '--max-sats',
        '10',
        '--max-total-sats',
        '100',
        '--tokens',
        tokens,
        '--ledger',
        ledger,
        ...devPay,
      ]);
      expect(run.status).toBe(0);
      receipts.push(run.stderr.includes('paid 10 sats') ? 'paid' : 'reused');
    }
    expect(receipts).toEqual(['paid', 'reused', 'reused', 'paid']);
    expect(
      readFileSync(ledger, 'utf8')
        .trim()
        .split('\n')
        .filter((l) => JSON.parse(l).status === 'paid'),
    ).toHaveLength(2);
    expect(statSync(tokens).mode & 0o777).toBe(0o600);
  });
});
