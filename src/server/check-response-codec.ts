/**
 * CheckResponse bytes written by hand: sizes first, then one Buffer, with no message objects on the way.
 * What Envoy decodes equals what protobufjs makes of toCheckResponse (test/unit/check-response-codec.test.ts).
 * Fields at their proto3 defaults (a 0 code or append action, an empty body) are left out, as proto3 allows.
 * Field numbers: proto/envoy/service/auth/v3/external_auth.proto, proto/envoy/config/core/v3/base.proto,
 * proto/google/rpc/status.proto, proto/envoy/type/v3/http_status.proto.
 */
import type { Header, HttpAnswer } from '../core/response';
import { grpcCodeOf } from './envoy-grpc';

// Tags (field number << 3 | wire type 2, or 0 for the varints).
const CHECK_STATUS = 0x0a; // CheckResponse.status = 1
const CHECK_DENIED = 0x12; // CheckResponse.denied_response = 2
const CHECK_OK = 0x1a; // CheckResponse.ok_response = 3
const STATUS_CODE = 0x08; // google.rpc.Status.code = 1; also HttpStatus.code = 1
const DENIED_STATUS = 0x0a; // DeniedHttpResponse.status = 1
const DENIED_HEADERS = 0x12; // DeniedHttpResponse.headers = 2
const DENIED_BODY = 0x1a; // DeniedHttpResponse.body = 3
const OK_HEADERS = 0x12; // OkHttpResponse.headers = 2
const OK_REMOVE = 0x2a; // OkHttpResponse.headers_to_remove = 5
const OK_CLIENT_HEADERS = 0x32; // OkHttpResponse.response_headers_to_add = 6
const OPTION_HEADER = 0x0a; // HeaderValueOption.header = 1
const OPTION_APPEND_ACTION = 0x18; // HeaderValueOption.append_action = 3
const HEADER_KEY = 0x0a; // HeaderValue.key = 1
const HEADER_VALUE = 0x12; // HeaderValue.value = 2

// HeaderValueOption.HeaderAppendAction
const APPEND_IF_EXISTS_OR_ADD = 0;
const OVERWRITE_IF_EXISTS_OR_ADD = 2;

export function encodeCheckResponse(answer: HttpAnswer): Buffer {
  return answer.allowed ? encodeOk(answer) : encodeDenied(answer);
}

function encodeOk(answer: HttpAnswer & { allowed: true }): Buffer {
  let okSize = 0;
  for (const header of answer.upstreamHeaders)
    okSize += delimitedSize(optionSize(header, OVERWRITE_IF_EXISTS_OR_ADD));
  for (const name of answer.removeHeaders) okSize += delimitedSize(Buffer.byteLength(name));
  for (const header of answer.clientHeaders)
    okSize += delimitedSize(optionSize(header, OVERWRITE_IF_EXISTS_OR_ADD));

  const out = Buffer.allocUnsafe(2 + delimitedSize(okSize));
  // An empty status is code 0, OK.
  out[0] = CHECK_STATUS;
  out[1] = 0;
  let pos = writeTagAndLength(out, 2, CHECK_OK, okSize);
  for (const header of answer.upstreamHeaders)
    pos = writeOption(out, pos, OK_HEADERS, header, OVERWRITE_IF_EXISTS_OR_ADD);
  for (const name of answer.removeHeaders) pos = writeString(out, pos, OK_REMOVE, name);
  for (const header of answer.clientHeaders)
    pos = writeOption(out, pos, OK_CLIENT_HEADERS, header, OVERWRITE_IF_EXISTS_OR_ADD);
  return out;
}

function encodeDenied(answer: HttpAnswer & { allowed: false }): Buffer {
  const code = grpcCodeOf(answer);
  const statusSize = 1 + varintSize(code);
  const httpStatusSize = 1 + varintSize(answer.status);
  let deniedSize = delimitedSize(httpStatusSize);
  for (const header of answer.headers)
    deniedSize += delimitedSize(optionSize(header, APPEND_IF_EXISTS_OR_ADD));
  const bodySize = Buffer.byteLength(answer.body);
  if (bodySize > 0) deniedSize += delimitedSize(bodySize);

  const out = Buffer.allocUnsafe(delimitedSize(statusSize) + delimitedSize(deniedSize));
  let pos = writeTagAndLength(out, 0, CHECK_STATUS, statusSize);
  out[pos++] = STATUS_CODE;
  pos = writeVarint(out, pos, code);
  pos = writeTagAndLength(out, pos, CHECK_DENIED, deniedSize);
  pos = writeTagAndLength(out, pos, DENIED_STATUS, httpStatusSize);
  out[pos++] = STATUS_CODE;
  pos = writeVarint(out, pos, answer.status);
  for (const header of answer.headers)
    pos = writeOption(out, pos, DENIED_HEADERS, header, APPEND_IF_EXISTS_OR_ADD);
  if (bodySize > 0) {
    pos = writeTagAndLength(out, pos, DENIED_BODY, bodySize);
    out.write(answer.body, pos, 'utf8');
  }
  return out;
}

function optionSize([key, value]: Header, appendAction: number): number {
  const headerSize = delimitedSize(Buffer.byteLength(key)) + delimitedSize(Buffer.byteLength(value));
  return delimitedSize(headerSize) + (appendAction === 0 ? 0 : 2);
}

function writeOption(out: Buffer, start: number, tag: number, header: Header, appendAction: number): number {
  const [key, value] = header;
  const keySize = Buffer.byteLength(key);
  const valueSize = Buffer.byteLength(value);
  const headerSize = delimitedSize(keySize) + delimitedSize(valueSize);
  let pos = writeTagAndLength(out, start, tag, optionSize(header, appendAction));
  pos = writeTagAndLength(out, pos, OPTION_HEADER, headerSize);
  pos = writeTagAndLength(out, pos, HEADER_KEY, keySize);
  pos += out.write(key, pos, 'utf8');
  pos = writeTagAndLength(out, pos, HEADER_VALUE, valueSize);
  pos += out.write(value, pos, 'utf8');
  if (appendAction !== 0) {
    out[pos++] = OPTION_APPEND_ACTION;
    out[pos++] = appendAction;
  }
  return pos;
}

function writeString(out: Buffer, start: number, tag: number, text: string): number {
  const pos = writeTagAndLength(out, start, tag, Buffer.byteLength(text));
  return pos + out.write(text, pos, 'utf8');
}

/** A one-byte tag (field numbers below 16), its length and the field. */
function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

function writeTagAndLength(out: Buffer, pos: number, tag: number, length: number): number {
  out[pos] = tag;
  return writeVarint(out, pos + 1, length);
}

/** Non-negative integers only: every length, status and code written here. */
function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) size++;
  return size;
}

function writeVarint(out: Buffer, start: number, value: number): number {
  let pos = start;
  let v = value;
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}
