/**
 * Envoy ext_authz v3 over gRPC: CheckRequest in, CheckResponse out. Translation only; the gate decides.
 * Every decision, including failures, is an OK gRPC reply carrying the HTTP answer, so an Envoy configured
 * with failure_mode_allow can never turn a Plannt failure into an allow.
 */
import type { GateRequest } from '../core/decide';
import { type HttpAnswer, isGrpcContentType } from '../core/response';
import { MACAROON_HEADERS } from '../l402/header';

// Only the fields Plannt reads, as @grpc/proto-loader decodes them (keepCase).
export interface CheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string } } };
    request?: {
      http?: {
        id?: string;
        method?: string;
        host?: string;
        path?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] };
      };
    };
    context_extensions?: Record<string, string>;
  };
}

const GRPC_OK = 0;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAUTHENTICATED = 16;

export interface EnvoyRequest {
  request: GateRequest;
  requestId?: string;
  /** The downstream request is gRPC: the denial is rendered for a gRPC client. */
  grpc: boolean;
}

/**
 * What Plannt reads of a CheckRequest, as the generic decoder leaves it: the fast reader
 * (check-request-codec.ts) fills the same shape straight from the wire, and both end in toEnvoyRequest.
 */
export interface CheckFields {
  /** attributes.source.address.socket_address.address */
  peer: string | undefined;
  id: string | undefined;
  method: string | undefined;
  host: string | undefined;
  path: string | undefined;
  authorization: string | undefined;
  /** The first non-empty of MACAROON_HEADERS. */
  macaroonHeader: string | undefined;
  forwardedFor: string | undefined;
  contentType: string | undefined;
  contextExtensions: Readonly<Record<string, string>> | undefined;
}

/**
 * The reference translation over the generic decoder's objects, which check-request-codec.ts is proven against.
 * `trustedHops`: how many proxies, counted from the right of `x-forwarded-for`, append to it and are trusted
 * (Envoy itself counts when it appends, i.e. with use_remote_address). 0 ignores the header: the client is
 * Envoy's downstream peer, `attributes.source.address`.
 */
export function fromCheckRequest(check: CheckRequest, deadline: number, trustedHops = 0): EnvoyRequest {
  const http = check.attributes?.request?.http ?? {};
  const fields: CheckFields = {
    peer: check.attributes?.source?.address?.socket_address?.address,
    id: http.id,
    method: http.method,
    host: http.host ?? header(http, ':authority'),
    path: http.path,
    authorization: header(http, 'authorization'),
    macaroonHeader: firstHeader(http, MACAROON_HEADERS),
    forwardedFor: trustedHops > 0 ? header(http, 'x-forwarded-for') : undefined,
    contentType: header(http, 'content-type'),
    contextExtensions: check.attributes?.context_extensions,
  };
  return toEnvoyRequest(fields, deadline, trustedHops);
}

const NO_EXTENSIONS: Readonly<Record<string, string>> = Object.freeze({});

export function toEnvoyRequest(fields: CheckFields, deadline: number, trustedHops = 0): EnvoyRequest {
  const rawPath = fields.path ?? '/';
  const query = rawPath.search(/[?#]/);
  const request: GateRequest = {
    host: fields.host ?? '',
    path: query < 0 ? rawPath : rawPath.slice(0, query),
    method: (fields.method ?? 'GET').toUpperCase(),
    contextExtensions: fields.contextExtensions ?? NO_EXTENSIONS,
    deadline,
  };
  // Assigned, not spread: no throwaway object per optional field on every check.
  if (fields.authorization !== undefined) request.authorization = fields.authorization;
  if (fields.macaroonHeader !== undefined) request.macaroonHeader = fields.macaroonHeader;
  const clientAddress = clientAddressOf(fields.peer, fields.forwardedFor, trustedHops);
  if (clientAddress !== undefined) request.clientAddress = clientAddress;
  const envoy: EnvoyRequest = { request, grpc: isGrpcContentType(fields.contentType) };
  if (fields.id) envoy.requestId = fields.id;
  return envoy;
}

/** Longer than any IPv6 text form: a bound on what a client can make Plannt keep as a rate-limit key. */
const MAX_ADDRESS_LENGTH = 64;

/**
 * Each trusted proxy appends the address it received the connection from, so the rightmost `trustedHops`
 * entries are trustworthy and the leftmost of them names the client. Entries further left are whatever the
 * client sent. With fewer entries than trusted hops, fall back to the peer address, as Envoy does.
 */
export function clientAddressOf(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trustedHops: number,
): string | undefined {
  let address = peer;
  if (trustedHops > 0 && forwardedFor !== undefined) {
    const hops = forwardedFor.split(',');
    const entry = hops.length >= trustedHops ? hops[hops.length - trustedHops]?.trim() : undefined;
    if (entry) address = entry;
  }
  return address ? address.slice(0, MAX_ADDRESS_LENGTH) : undefined;
}

type HttpAttributes = NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http'];

/**
 * Envoy sends `headers`, with repeated headers comma-joined, or `header_map` when encode_raw_headers is on,
 * one entry per header line: those are joined the same way, so both forms are judged alike.
 */
function header(http: HttpAttributes, name: string): string | undefined {
  const direct = http?.headers?.[name];
  if (direct !== undefined) return direct;
  let joined: string | undefined;
  for (const entry of http?.header_map?.headers ?? []) {
    if (entry.key !== name) continue;
    const value = entry.raw_value?.length ? entry.raw_value.toString('utf8') : (entry.value ?? '');
    joined = joined === undefined ? value : `${joined},${value}`;
  }
  return joined;
}

function firstHeader(http: HttpAttributes, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = header(http, name);
    if (value) return value;
  }
  return undefined;
}

/** The CheckResponse as protobufjs objects: the reference check-response-codec.ts is proven against. */
export function toCheckResponse(answer: HttpAnswer): object {
  if (answer.allowed) {
    return {
      status: { code: GRPC_OK },
      ok_response: {
        headers: answer.upstreamHeaders.map(([key, value]) => ({
          header: { key, value },
          append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
        })),
        headers_to_remove: answer.removeHeaders,
        response_headers_to_add: answer.clientHeaders.map(([key, value]) => ({
          header: { key, value },
          append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
        })),
      },
    };
  }
  return {
    status: { code: grpcCodeOf(answer) },
    denied_response: {
      status: { code: answer.status },
      headers: answer.headers.map(([key, value]) => ({
        header: { key, value },
        append_action: 'APPEND_IF_EXISTS_OR_ADD',
      })),
      body: answer.body,
    },
  };
}

/** The gRPC status of a denial's CheckResponse (Envoy reads only OK or not). */
export function grpcCodeOf(answer: HttpAnswer & { allowed: false }): number {
  return answer.status === 401 ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED;
}
