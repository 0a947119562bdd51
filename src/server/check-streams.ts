/**
 * Envoy's Check calls read and answered straight on node's HTTP/2 streams, the hot path written by hand.
 * grpc-js's per-call machinery (call objects, interceptors, metadata, a deadline timer per call) was a third of
 * a free-route check's CPU: 38–40 µs through it, 27–29 this way (docs/benchmarks.md). The connections
 * themselves (TLS, keepalive, max age, shutdown) and every other method (health) stay grpc-js's: only streams
 * for the Check path are taken from its HTTP/2 servers.
 *
 * gRPC over HTTP/2 as the spec has it for one unary call: a `grpc-timeout` header, one length-prefixed message
 * (gzip or deflate when `grpc-encoding` says so), then headers, the message and a `grpc-status` trailer.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { gunzipSync, inflateSync } from 'node:zlib';
import type * as grpc from '@grpc/grpc-js';

export interface CheckCall {
  /** The serialised CheckRequest; a string says why none could be read. */
  message: Buffer | TooLarge | string;
  /** Date.now() ms when the caller stops waiting (`grpc-timeout` from the call's arrival). */
  deadline: number;
  /** True once the caller reset the stream or the connection closed. */
  cancelled(): boolean;
  /**
   * Sends the serialised CheckResponse with grpc-status 0; nothing once the call is gone. `late` is called if
   * the answer's last frame leaves only after `deadline`: its caller had stopped waiting.
   */
  answer(response: Buffer, late?: () => void): void;
}

/** A message longer than the bound: how long it said it was. */
export class TooLarge {
  constructor(readonly bytes: number) {}
}

/** Used when a caller sets no deadline. */
const NO_DEADLINE_MS = 30_000;
const UNITS_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};
const TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const PREFIX_BYTES = 5;

/**
 * Takes the Check path's streams from `server`'s HTTP/2 servers (call after bindAsync) and hands each call,
 * once its message is read, to `onCall`. Messages over `maxBytes` are not kept, only measured.
 */
export function serveChecks(
  server: grpc.Server,
  path: string,
  maxBytes: number,
  onCall: (call: CheckCall) => void,
): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  if (!http2Servers) throw new Error('@grpc/grpc-js no longer keeps its http2 servers: update serveChecks');
  for (const http2Server of http2Servers.keys()) {
    const [grpcJs, ...others] = http2Server.listeners('stream') as ((...args: unknown[]) => void)[];
    if (!grpcJs || others.length > 0)
      throw new Error('@grpc/grpc-js no longer has one stream listener per http2 server: update serveChecks');
    http2Server.removeAllListeners('stream');
    http2Server.on(
      'stream',
      (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
        if (headers[':path'] === path) readCall(stream, headers, maxBytes, onCall);
        else grpcJs(stream, headers, ...rest);
      },
    );
  }
}

function readCall(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  maxBytes: number,
  onCall: (call: CheckCall) => void,
): void {
  const deadline = Date.now() + timeoutMs(headers['grpc-timeout']);
  // A reset or a closed connection surfaces as 'close'; without a listener an error event would throw.
  stream.on('error', () => {});
  const contentType = headers['content-type'];
  if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
    respond(stream, { ':status': 415 }, { endStream: true });
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let read = false;
  const call = (message: CheckCall['message']) => {
    read = true;
    onCall({
      message,
      deadline,
      cancelled: () => stream.destroyed,
      answer: (response, late) => answer(stream, response, late && (() => Date.now() > deadline && late())),
    });
  };
  // Past the bound nothing more is kept: the call is answered at once, and the rest only counted.
  stream.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (read) return;
    if (received <= maxBytes + PREFIX_BYTES) chunks.push(chunk);
    else {
      const declared = Buffer.concat([...chunks, chunk], PREFIX_BYTES).readUInt32BE(1);
      call(new TooLarge(Math.max(declared, received - PREFIX_BYTES)));
    }
  });
  stream.once('end', () => {
    if (!read) call(messageOf(chunks, received, maxBytes, headers['grpc-encoding']));
  });
}

function timeoutMs(header: string | string[] | undefined): number {
  const match = typeof header === 'string' ? TIMEOUT.exec(header) : null;
  if (!match) return NO_DEADLINE_MS;
  return Number(match[1]) * (UNITS_MS[match[2] as string] as number);
}

/** The message of a call whose bytes have all arrived, at most `maxBytes` and the prefix (longer ones end early). */
function messageOf(
  chunks: Buffer[],
  received: number,
  maxBytes: number,
  encoding: string | string[] | undefined,
): Buffer | string {
  if (received < PREFIX_BYTES) return 'no gRPC message';
  const head = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  const length = head.readUInt32BE(1);
  if (received !== PREFIX_BYTES + length) return 'not one gRPC message';
  const body = head.subarray(PREFIX_BYTES, PREFIX_BYTES + length);
  if (head[0] === 0) return body;
  if (head[0] !== 1) return 'a gRPC message with an unknown flag';
  try {
    // Bounded: a small compressed message must not inflate past what an uncompressed one may be.
    if (encoding === 'gzip') return gunzipSync(body, { maxOutputLength: maxBytes });
    if (encoding === 'deflate') return inflateSync(body, { maxOutputLength: maxBytes });
  } catch {
    return `a gRPC message that does not ${encoding === 'gzip' ? 'gunzip' : 'inflate'} to at most ${maxBytes} bytes`;
  }
  return 'a compressed gRPC message without a known grpc-encoding';
}

/** `closed`, if given, runs once the stream has closed: its last frame written, or reset. */
function answer(stream: ServerHttp2Stream, response: Buffer, closed?: () => void): void {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + response.length);
  frame[0] = 0;
  frame.writeUInt32BE(response.length, 1);
  response.copy(frame, PREFIX_BYTES);
  if (
    !respond(stream, { ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true })
  )
    return;
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  if (closed) stream.once('close', closed);
  stream.end(frame);
}

/** False when the stream closed meanwhile (a reset): there is no one to answer. */
function respond(
  stream: ServerHttp2Stream,
  headers: Record<string, string | number>,
  options: { endStream?: boolean; waitForTrailers?: boolean },
): boolean {
  if (stream.destroyed || stream.headersSent) return false;
  try {
    stream.respond(headers, options);
    return true;
  } catch {
    return false;
  }
}
