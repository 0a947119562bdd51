/**
 * Plain HTTP/1.1 requests with full control over Host and repeated headers (fetch forbids setting Host),
 * answered with every header value in order and the body as text.
 */
import { request } from 'node:http';

export interface HttpCall {
  method?: string;
  /** Request target: path and query. */
  path?: string;
  /** Header values; an array sends the header once per value. */
  headers?: Record<string, string | string[]>;
  body?: string;
  timeoutMs?: number;
}

export interface HttpResult {
  status: number;
  /** Every value of a response header, in order. */
  header(name: string): string[];
  /** Response header names, lower-case. */
  headerNames: string[];
  text: string;
  json(): Record<string, unknown>;
}

export function httpCall(baseUrl: string, call: HttpCall = {}): Promise<HttpResult> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: call.method ?? 'GET',
        path: call.path ?? '/',
        headers: call.headers ?? {},
        timeout: call.timeoutMs ?? 10_000,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const raw = res.rawHeaders;
          const pairs: [string, string][] = [];
          for (let i = 0; i + 1 < raw.length; i += 2)
            pairs.push([raw[i]?.toLowerCase() ?? '', raw[i + 1] ?? '']);
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            header: (name) => pairs.filter(([key]) => key === name.toLowerCase()).map(([, v]) => v),
            headerNames: pairs.map(([key]) => key),
            text,
            json: () => JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${baseUrl} in time`)));
    req.on('error', reject);
    req.end(call.body);
  });
}
