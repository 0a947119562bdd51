/**
 * Calls Plannt the way Envoy's ext_authz filter does: a gRPC client built from the vendored protos, a
 * realistic CheckRequest (pseudo-headers, x-request-id, user-agent, source socket address, context
 * extensions) and a deadline. The CheckResponse is flattened into what the test wants to assert on.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AuthorizationClient, HealthClient, PROTO_DIR } from '../../src/envoy/protos';

export type Header = [name: string, value: string];

export interface CheckInput {
  method?: string;
  host?: string;
  /** Path with the query string, as Envoy sends it. */
  path?: string;
  /**
   * Extra request headers; names are lower-cased as Envoy does. A repeated header (an array) is joined with
   * `,` in `headers`, as Envoy joins it, and kept as one entry per value in `header_map`.
   */
  headers?: Record<string, string | string[]>;
  /** attributes.context_extensions, set per route in Envoy. */
  context?: Record<string, string>;
  /** gRPC deadline from now; Envoy's ext_authz `timeout`. */
  deadlineMs?: number;
  sourceAddress?: string;
  requestId?: string;
  /** Send `header_map` with raw byte values instead of `headers`, as Envoy does with encode_raw_headers. */
  encodeRawHeaders?: boolean;
}

export interface HeaderOption {
  key: string;
  value: string;
  appendAction: string;
}

export interface CheckResult {
  allowed: boolean;
  /** google.rpc.Status code of the CheckResponse (0 allow, 7 or 16 deny). */
  grpcCode: number;
  /** HTTP status of a denial; 200 for an allow. */
  status: number;
  /** Denial headers sent to the downstream client, in order. */
  headers: Header[];
  /** Every value of one denial header. */
  header(name: string): string[];
  /** The denial body, parsed as JSON (undefined for an allow). */
  body: Record<string, unknown>;
  /** Headers set on the upstream request of an allow, by name. */
  upstreamHeaders: Record<string, string>;
  /** The same headers with their append action. */
  upstreamHeaderOptions: HeaderOption[];
  /** Headers removed from the upstream request of an allow. */
  removeHeaders: string[];
  /** Headers an allow adds to the response the client gets (ok_response.response_headers_to_add), by name. */
  clientHeaders: Record<string, string>;
  raw: RawCheckResponse;
}

interface RawHeaderOption {
  header?: { key?: string; value?: string } | null;
  append_action?: string;
}

export interface RawCheckResponse {
  status?: { code?: number; message?: string } | null;
  http_response?: 'ok_response' | 'denied_response';
  denied_response?: {
    status?: { code?: string | number } | null;
    headers?: RawHeaderOption[];
    body?: string;
  } | null;
  ok_response?: {
    headers?: RawHeaderOption[];
    headers_to_remove?: string[];
    response_headers_to_add?: RawHeaderOption[];
  } | null;
}

type UnaryCall<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: Res) => void,
) => grpc.ClientUnaryCall;

/** The HTTP status enum arrives by name (enums: String); map it back to the number. */
const HTTP_STATUS: ReadonlyMap<string, number> = (() => {
  const definition = protoLoader.loadSync('envoy/type/v3/http_status.proto', { includeDirs: [PROTO_DIR] });
  const statusEnum = definition['envoy.type.v3.StatusCode'] as unknown as {
    type: { value: { name: string; number: number }[] };
  };
  return new Map(statusEnum.type.value.map((v) => [v.name, v.number] as const));
})();

export function authorizationClient(port: number): grpc.Client {
  return new AuthorizationClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

export function healthClient(port: number): grpc.Client {
  return new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** The CheckRequest Envoy would send for this HTTP request. */
export function checkRequest(input: CheckInput = {}): object {
  const method = input.method ?? 'GET';
  const host = input.host ?? 'api.example.com';
  const path = input.path ?? '/';
  const requestId = input.requestId ?? randomUUID();
  const headers: Record<string, string | string[]> = {
    ':authority': host,
    ':method': method,
    ':path': path,
    ':scheme': 'https',
    'user-agent': 'plannt-integration-test/1.0',
    accept: 'application/json',
    'x-forwarded-proto': 'https',
    'x-request-id': requestId,
  };
  for (const [name, value] of Object.entries(input.headers ?? {})) headers[name.toLowerCase()] = value;
  const now = Date.now();
  return {
    attributes: {
      source: {
        address: { socket_address: { address: input.sourceAddress ?? '203.0.113.7', port_value: 53412 } },
      },
      destination: { address: { socket_address: { address: '10.0.0.12', port_value: 8443 } } },
      request: {
        time: { seconds: String(Math.floor(now / 1000)), nanos: (now % 1000) * 1e6 },
        http: {
          id: requestId,
          method,
          ...(input.encodeRawHeaders
            ? {
                header_map: {
                  headers: Object.entries(headers).flatMap(([key, value]) =>
                    [value].flat().map((v) => ({ key, raw_value: Buffer.from(v, 'utf8') })),
                  ),
                },
              }
            : {
                headers: Object.fromEntries(
                  Object.entries(headers).map(([key, value]) => [key, [value].flat().join(',')]),
                ),
              }),
          path,
          host,
          scheme: 'https',
          protocol: 'HTTP/1.1',
          size: '0',
        },
      },
      context_extensions: input.context ?? {},
    },
  };
}

/** Sends one CheckRequest; rejects with the grpc.ServiceError when the call itself fails. */
export function checkRaw(client: grpc.Client, input: CheckInput = {}): Promise<RawCheckResponse> {
  const call = (client as unknown as { Check: UnaryCall<object, RawCheckResponse> }).Check.bind(client);
  return new Promise((resolve, reject) => {
    call(
      checkRequest(input),
      new grpc.Metadata(),
      { deadline: Date.now() + (input.deadlineMs ?? 5000) },
      (err, res) => (err || !res ? reject(err ?? new Error('empty CheckResponse')) : resolve(res)),
    );
  });
}

export async function check(client: grpc.Client, input: CheckInput = {}): Promise<CheckResult> {
  return parseCheckResponse(await checkRaw(client, input));
}

export function parseCheckResponse(raw: RawCheckResponse): CheckResult {
  const options = (list: RawHeaderOption[] | undefined): HeaderOption[] =>
    (list ?? []).map((h) => ({
      key: h.header?.key ?? '',
      value: h.header?.value ?? '',
      appendAction: h.append_action ?? '',
    }));
  const grpcCode = raw.status?.code ?? 0;
  if (raw.http_response === 'ok_response') {
    const upstream = options(raw.ok_response?.headers);
    return {
      allowed: grpcCode === 0,
      grpcCode,
      status: 200,
      headers: [],
      header: () => [],
      body: {},
      upstreamHeaders: Object.fromEntries(upstream.map((h) => [h.key, h.value])),
      upstreamHeaderOptions: upstream,
      removeHeaders: raw.ok_response?.headers_to_remove ?? [],
      clientHeaders: Object.fromEntries(
        options(raw.ok_response?.response_headers_to_add).map((h) => [h.key, h.value]),
      ),
      raw,
    };
  }
  const denied = raw.denied_response ?? {};
  const code = denied.status?.code;
  const status = typeof code === 'number' ? code : (HTTP_STATUS.get(code ?? '') ?? Number.NaN);
  const headers: Header[] = options(denied.headers ?? []).map((h) => [h.key, h.value]);
  let body: Record<string, unknown> = {};
  if (denied.body) body = JSON.parse(denied.body) as Record<string, unknown>;
  return {
    allowed: false,
    grpcCode,
    status,
    headers,
    header: (name) => headers.filter(([key]) => key.toLowerCase() === name.toLowerCase()).map(([, v]) => v),
    body,
    upstreamHeaders: {},
    upstreamHeaderOptions: [],
    removeHeaders: [],
    clientHeaders: {},
    raw,
  };
}

/** grpc.health.v1.Health/Check: the serving status by name. */
export function healthCheck(client: grpc.Client, service = ''): Promise<string> {
  const call = (client as unknown as { Check: UnaryCall<object, { status?: string }> }).Check.bind(client);
  return new Promise((resolve, reject) => {
    call({ service }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      err ? reject(err) : resolve(res?.status ?? ''),
    );
  });
}

/** The L402/LSAT WWW-Authenticate value parsed into its parameters. */
export function parseChallenge(value: string): { scheme: string; macaroon: string; invoice: string } {
  const match = /^(L402|LSAT) macaroon="([^"]+)", invoice="([^"]+)", version="0"$/.exec(value);
  if (!match) throw new Error(`not an L402 challenge: ${value}`);
  return { scheme: match[1] ?? '', macaroon: match[2] ?? '', invoice: match[3] ?? '' };
}
