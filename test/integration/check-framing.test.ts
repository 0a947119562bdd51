/**
 * gRPC framing on the Check path, sent as raw HTTP/2 streams: whatever arrives, the caller gets a decision with
 * grpc-status 0, never a gRPC error (which an Envoy with failure_mode_allow turns into an allow).
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { AuthorizationService } from '../../src/envoy/protos';
import { CHECK_PATH } from '../../src/server/grpc-server';
import { checkRequest, parseCheckResponse, type RawCheckResponse } from '../support/envoy-client';
import { type Plannt, startPlannt } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=faro' };
const method = AuthorizationService.Check;
if (!method) throw new Error('Check missing from the protos');
const serialize = method.requestSerialize as (request: object) => Buffer;
const deserialize = method.responseDeserialize as (bytes: Buffer) => RawCheckResponse;

/** A gRPC message: the compressed flag, the length, the bytes. */
function framed(message: Buffer, compressed = false, declaredLength = message.length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed ? 1 : 0;
  prefix.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([prefix, message]);
}

interface Answer {
  grpcStatus: string | undefined;
  message: Buffer;
}

let plannt: Plannt;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  plannt = await startPlannt();
  session = http2.connect(`http://127.0.0.1:${plannt.app.grpcPort}`);
  await once(session, 'connect');
});

afterAll(async () => {
  session?.close();
  await plannt?.stop();
});

/** Sends `body` on a Check stream (ending it unless `keepOpen`) and reads the answer. */
async function call(
  body: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
  keepOpen = false,
): Promise<Answer> {
  const stream = session.request({
    ':method': 'POST',
    ':path': CHECK_PATH,
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-timeout': '5S',
    ...headers,
  });
  const chunks: Buffer[] = [];
  let status: string | undefined;
  // grpc-status arrives in trailers, or in the headers of a trailers-only answer (a gRPC error).
  const statusOf = (h: http2.IncomingHttpHeaders) => {
    status ??= h['grpc-status'] as string | undefined;
  };
  stream.on('response', statusOf);
  stream.on('trailers', statusOf);
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = once(stream, 'end');
  if (keepOpen) stream.write(body);
  else stream.end(body);
  await ended;
  stream.close();
  return { grpcStatus: status, message: Buffer.concat(chunks).subarray(5) };
}

const decisionOf = (answer: Answer) => parseCheckResponse(deserialize(answer.message));

test('a CheckRequest arrives as one message and is judged', async () => {
  const answer = await call(framed(serialize(checkRequest(FORECAST))));
  expect(answer.grpcStatus).toBe('0');
  expect(decisionOf(answer).status).toBe(402);
});

test('a gzip-compressed CheckRequest (grpc-encoding: gzip) is judged like any other', async () => {
  const body = framed(gzipSync(serialize(checkRequest(FORECAST))), true);
  const answer = await call(body, { 'grpc-encoding': 'gzip' });
  expect(answer.grpcStatus).toBe('0');
  expect(decisionOf(answer).status).toBe(402);
});

test.each([
  ['no message at all', Buffer.alloc(0), {}],
  ['a truncated length prefix', Buffer.from([0, 0, 0]), {}],
  ['two messages', Buffer.concat([framed(Buffer.alloc(0)), framed(Buffer.alloc(0))]), {}],
  ['a compressed message without grpc-encoding', framed(gzipSync(Buffer.alloc(0)), true), {}],
  ['gzip that does not gunzip', framed(Buffer.from('not gzip'), true), { 'grpc-encoding': 'gzip' }],
])('%s is refused 400 malformed_request, as a decision', async (_name, body, headers) => {
  const answer = await call(body, headers);
  expect(answer.grpcStatus).toBe('0');
  const res = decisionOf(answer);
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('malformed_request');
});

test('a message over 1 MiB is refused 413 as soon as the bound is passed, before the caller finishes', async () => {
  // Declared as 100 MiB; only a little more than 1 MiB is sent, and the stream is left open.
  const partial = framed(Buffer.alloc(1024 * 1024 + 1), false, 100 * 1024 * 1024);
  const answer = await call(partial, {}, true);
  expect(answer.grpcStatus).toBe('0');
  const res = decisionOf(answer);
  expect(res.status).toBe(413);
  expect(res.body.error).toBe('request_too_large');
});
