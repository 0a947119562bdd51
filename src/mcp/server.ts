/**
 * The MCP face of the L402 client: `paid_fetch` (an HTTP request that pays its 402 within the budget fixed at
 * start) and `spending_report`. A refusal is a tool error whose text says why (budget, invoice, payment), so
 * the model can reason about it; an HTTP answer, whatever its status, is a result.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
// The SDK's types name zod/v3's declarations; importing the same entry keeps the schema types identical.
import { z } from 'zod/v3';
import type { BudgetLimits } from '../client/budget';
import { L402ClientError } from '../client/errors';
import type { L402Client } from '../client/fetch';

export interface PaidFetchServerOptions {
  client: L402Client;
  /** The caps of the whole session; a call's max_sats can only narrow the per-request cap. */
  budget: BudgetLimits;
  /** Longer response bodies are cut, to spare the model's context. */
  maxBodyChars?: number;
  version?: string;
}

const DEFAULT_MAX_BODY_CHARS = 100_000;

export function createPaidFetchServer(options: PaidFetchServerOptions): McpServer {
  const server = new McpServer({ name: 'plannt', version: options.version ?? '0.1.0' });
  const maxBodyChars = options.maxBodyChars ?? DEFAULT_MAX_BODY_CHARS;

  server.registerTool(
    'paid_fetch',
    {
      title: 'HTTP request that pays L402 (Lightning) paywalls',
      description:
        'Sends an HTTP request. If the server answers 402 Payment Required with an L402 challenge, pays the ' +
        'Lightning invoice (within the spending budget fixed when this server started, and within max_sats) ' +
        'and retries with the credential. Returns the HTTP status, what was paid, and the response body.',
      inputSchema: {
        url: z.string().url().describe('absolute http(s) URL'),
        method: z.string().min(1).optional().describe('HTTP method, default GET'),
        headers: z.record(z.string()).optional().describe('request headers'),
        body: z.string().optional().describe('request body'),
        max_sats: z
          .number()
          .int()
          .nonnegative()
          .optional()
          .describe('most this request may cost in sats, fees included (cannot raise the session cap)'),
      },
      annotations: { openWorldHint: true, destructiveHint: false },
    },
    async ({ url, method, headers, body, max_sats }) => {
      const perRequest = Math.min(options.budget.maxPerRequestSats, max_sats ?? Number.POSITIVE_INFINITY);
      try {
        const { response, receipt } = await options.client.request(
          url,
          { method: method ?? 'GET', ...(headers && { headers }), ...(body !== undefined && { body }) },
          { budget: { ...options.budget, maxPerRequestSats: perRequest } },
        );
        const text = await response.text();
        const paid = receipt
          ? `paid ${receipt.amountSats} sats (fee ${receipt.feeSats}), payment hash ${receipt.paymentHash}, settled in ${receipt.settleMs} ms`
          : 'paid nothing';
        const shown =
          text.length > maxBodyChars
            ? `${text.slice(0, maxBodyChars)}\n[… ${text.length - maxBodyChars} more characters cut]`
            : text;
        return {
          content: [
            { type: 'text', text: `HTTP ${response.status} ${response.statusText}\n${paid}\n\n${shown}` },
          ],
        };
      } catch (err) {
        const why =
          err instanceof L402ClientError
            ? `${err.code}: ${err.message}`
            : `request failed: ${(err as Error).message}${(err as Error).cause ? ` (${String((err as Error).cause)})` : ''}`;
        const report = options.client.report();
        return {
          isError: true,
          content: [
            {
              type: 'text',
              text: `${why}\nspent so far: ${report.totalSats} of ${options.budget.maxTotalSats} sats`,
            },
          ],
        };
      }
    },
  );

  server.registerTool(
    'spending_report',
    {
      title: 'What paid_fetch has spent',
      description:
        'The spending budget, what was spent in total and per host, and every payment (no preimages).',
      annotations: { readOnlyHint: true },
    },
    async () => {
      const report = options.client.report();
      const payments = options.client.ledger.entries();
      return {
        content: [
          {
            type: 'text',
            text: JSON.stringify(
              {
                budget: options.budget,
                remaining_total_sats: Math.max(0, options.budget.maxTotalSats - report.totalSats),
                ...report,
                entries: payments,
              },
              null,
              2,
            ),
          },
        ],
      };
    },
  );

  return server;
}
