/**
 * `plannt mcp` driven by the MCP SDK's own client over stdio, as an MCP host would run it: the compiled CLI
 * with a session budget of 25 sats (10 per request), the dev wallet, and a Plannt-protected upstream.
 */
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type AuthzProxy, startEchoUpstream, startExtAuthzProxy } from '../support/ext-authz-proxy';
import { type Plannt, startPlannt } from '../support/plannt';

// `npm test` builds before jest runs.
const CLI = path.join(__dirname, '../../dist/src/cli.js');

let plannt: Plannt;
let upstream: { url: string; close(): Promise<void> };
let proxy: AuthzProxy;
let transport: StdioClientTransport;
let client: Client;
let stderr = '';

beforeAll(async () => {
  plannt = await startPlannt();
  upstream = await startEchoUpstream();
  proxy = await startExtAuthzProxy(plannt.client, upstream.url);
  transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      CLI,
      'mcp',
      '--max-total-sats',
      '25',
      '--max-sats',
      '10',
      '--dev-pay-url',
      `${plannt.adminUrl}/dev/pay`,
    ],
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  client = new Client({ name: 'plannt-test-host', version: '1.0.0' });
  await client.connect(transport);
});
afterAll(async () => {
  const pid = transport?.pid;
  await client?.close();
  if (pid) expect(isRunning(pid)).toBe(false);
  await proxy?.close();
  await upstream?.close();
  await plannt?.stop();
});

interface ToolResult {
  isError?: boolean;
  content: { type: string; text?: string }[];
}

async function call(
  name: string,
  args: Record<string, unknown> = {},
): Promise<{ isError: boolean; text: string }> {
  const result = (await client.callTool({ name, arguments: args })) as ToolResult;
  return { isError: result.isError === true, text: result.content.map((c) => c.text ?? '').join('') };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('plannt mcp over stdio', () => {
  it('lists paid_fetch (url, method, headers, body, max_sats) and spending_report', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['paid_fetch', 'spending_report']);
    const paidFetch = tools.find((t) => t.name === 'paid_fetch');
    expect(Object.keys(paidFetch?.inputSchema.properties ?? {}).sort()).toEqual([
      'body',
      'headers',
      'max_sats',
      'method',
      'url',
    ]);
    expect(paidFetch?.inputSchema.required).toEqual(['url']);
  });

  it('paid_fetch pays the 402 and returns status, receipt and the upstream body', async () => {
    const { isError, text } = await call('paid_fetch', { url: `${proxy.url}/v1/forecast?city=lima` });
    expect(isError).toBe(false);
    const [status, receipt, , body] = text.split('\n');
    expect(status).toBe('HTTP 200 OK');
    expect(receipt).toMatch(/^paid 10 sats \(fee 0\), payment hash [0-9a-f]{64}, settled in \d+ ms$/);
    expect(JSON.parse(body ?? '{}')).toMatchObject({
      path: '/v1/forecast?city=lima',
      headers: { 'x-plannt-amount-sats': '10', 'x-plannt-service': 'weather' },
    });
  });

  it('paid_fetch sends method, headers and body', async () => {
    const { isError, text } = await call('paid_fetch', {
      url: `${proxy.url}/v1/history`,
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'x-agent': 'test' },
      body: 'last week',
    });
    expect(isError).toBe(false);
    expect(JSON.parse(text.split('\n\n')[1] ?? '{}')).toMatchObject({
      method: 'POST',
      body: 'last week',
      headers: { 'x-agent': 'test' },
    });
  });

  it('a call with max_sats below the price is a tool error that says why, and pays nothing', async () => {
    const { isError, text } = await call('paid_fetch', { url: `${proxy.url}/v1/forecast`, max_sats: 5 });
    expect(isError).toBe(true);
    expect(text).toContain(
      'budget_exceeded: budget exceeded: the invoice asks for 10 sats and the per-request maximum allows 5',
    );
    expect(text).toContain('spent so far: 20 of 25 sats');
  });

  it('when the session budget is exhausted, paid_fetch is a tool error naming the total budget', async () => {
    const { isError, text } = await call('paid_fetch', { url: `${proxy.url}/v1/forecast` });
    expect(isError).toBe(true);
    expect(text).toContain('the total budget allows 5 more sats; nothing was paid');
  });

  it('spending_report shows the budget, what was spent per host, and every payment without preimages', async () => {
    const { isError, text } = await call('spending_report');
    expect(isError).toBe(false);
    const report = JSON.parse(text) as Record<string, unknown> & { entries: Record<string, unknown>[] };
    expect(report).toMatchObject({
      budget: { maxPerRequestSats: 10, maxTotalSats: 25 },
      remaining_total_sats: 5,
      totalSats: 20,
      paidSats: 20,
      payments: 2,
      byHost: { [new URL(proxy.url).host]: { sats: 20, payments: 2 } },
    });
    expect(report.entries).toHaveLength(2);
    for (const entry of report.entries) {
      expect(entry).toMatchObject({ status: 'paid', amountSats: 10 });
      expect(entry).not.toHaveProperty('preimage');
    }
    expect(stderr).toBe('');
  });
});
