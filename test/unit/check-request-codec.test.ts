/**
 * The hand-written CheckRequest reader reads exactly what fromCheckRequest reads from the generic decoder
 * (protobufjs via proto-loader), whatever else the message holds, and never throws on garbage.
 */
import fc from 'fast-check';
import { AuthorizationService } from '../../src/envoy/protos';
import { MACAROON_HEADERS } from '../../src/l402/header';
import { MalformedCheckRequest, readCheckRequest } from '../../src/server/check-request-codec';
import {
  type CheckRequest,
  type EnvoyRequest,
  fromCheckRequest,
  toEnvoyRequest,
} from '../../src/server/envoy-grpc';
import { checkRequest } from '../support/envoy-client';

const check = AuthorizationService.Check;
if (!check) throw new Error('Check missing');
const serialize = check.requestSerialize;
const deserialize = check.requestDeserialize as (bytes: Buffer) => CheckRequest;
const DEADLINE = 1_700_000_000_000;

/** What the server does with the bytes; undefined when the reader refuses them as malformed. */
function fast(bytes: Buffer, hops: number): EnvoyRequest | undefined {
  const fields = readCheckRequest(bytes);
  return fields instanceof MalformedCheckRequest ? undefined : toEnvoyRequest(fields, DEADLINE, hops);
}

/** What the generic decoder gives; undefined when it throws. */
function generic(bytes: Buffer, hops: number): EnvoyRequest | undefined {
  let decoded: CheckRequest;
  try {
    decoded = deserialize(bytes);
  } catch {
    return undefined;
  }
  return fromCheckRequest(decoded, DEADLINE, hops);
}

// A protobuf writer for the tests, independent of the reader under test: a message is a list of fields.
type Field =
  | { n: number; varint: bigint }
  | { n: number; fixed: Buffer }
  | { n: number; bytes: Buffer }
  | { n: number; message: Field[] }
  | { n: number; group: Field[] };

function varint(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function encode(fields: readonly Field[]): Buffer {
  const parts: Buffer[] = [];
  const tag = (n: number, wireType: number) => Buffer.from(varint((BigInt(n) << 3n) | BigInt(wireType)));
  for (const f of fields) {
    if ('varint' in f) parts.push(tag(f.n, 0), Buffer.from(varint(f.varint)));
    else if ('fixed' in f) parts.push(tag(f.n, f.fixed.length === 8 ? 1 : 5), f.fixed);
    else if ('group' in f) parts.push(tag(f.n, 3), encode(f.group), tag(f.n, 4));
    else {
      const body = 'bytes' in f ? f.bytes : encode(f.message);
      parts.push(tag(f.n, 2), Buffer.from(varint(BigInt(body.length))), body);
    }
  }
  return Buffer.concat(parts);
}

const WANTED = ['authorization', ...MACAROON_HEADERS, 'x-forwarded-for', 'content-type'];
const headerName = fc.oneof(
  fc.constantFrom(...WANTED, ':authority', 'x-request-id', 'Authorization', 'authorizatio', '__proto__', ''),
  fc.string({ maxLength: 24 }),
);
const text = fc.oneof(
  fc.constantFrom('', 'L402 abc:def', 'application/grpc+proto', '203.0.113.9, 10.0.0.1', 'GET', '/v1/x?y#z'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
/** A string field's bytes: text, or bytes that are not valid UTF-8. */
const stringBytes = fc.oneof(
  { weight: 4, arbitrary: text.map((s) => Buffer.from(s, 'utf8')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)) },
);

/** A field no message read here defines, of every wire type, groups nested. */
const unknownField: fc.Arbitrary<Field> = fc.letrec<{ field: Field }>((tie) => ({
  field: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({
      n: fc.integer({ min: 14, max: 2 ** 29 - 1 }),
      varint: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    }),
    fc.record({
      n: fc.integer({ min: 14, max: 5000 }),
      fixed: fc
        .constantFrom(4, 8)
        .chain((len) => fc.uint8Array({ minLength: len, maxLength: len }))
        .map(Buffer.from),
    }),
    fc.record({
      n: fc.integer({ min: 14, max: 5000 }),
      bytes: fc.uint8Array({ maxLength: 16 }).map(Buffer.from),
    }),
    fc.record({ n: fc.integer({ min: 14, max: 5000 }), group: fc.array(tie('field'), { maxLength: 3 }) }),
  ),
})).field;

/** A message: its fields in any order, repeated or absent, with unknown fields among them. */
function message(...known: fc.Arbitrary<Field>[]): fc.Arbitrary<Field[]> {
  return fc.array(fc.oneof(...known, unknownField), { maxLength: 8 });
}
const str = (n: number) => stringBytes.map((bytes): Field => ({ n, bytes }));
const sub = (n: number, body: fc.Arbitrary<Field[]>) => body.map((m): Field => ({ n, message: m }));
const uint = (n: number) => fc.bigInt({ min: 0n, max: 2n ** 32n - 1n }).map((v): Field => ({ n, varint: v }));
const entry = (n: number, key: fc.Arbitrary<string>) =>
  sub(
    n,
    message(
      key.map((k): Field => ({ n: 1, bytes: Buffer.from(k, 'utf8') })),
      str(2),
    ),
  );

const socketAddress = message(uint(1), str(2), uint(3), str(4));
const address = message(sub(1, socketAddress));
const peer = message(sub(1, address), str(2), str(4));
const headerValue = message(
  headerName.map((k): Field => ({ n: 1, bytes: Buffer.from(k, 'utf8') })),
  str(2),
  str(3),
);
const httpRequest = message(
  str(1),
  str(2),
  entry(3, headerName),
  entry(3, headerName),
  str(4),
  str(5),
  str(6),
  uint(9),
  str(10),
  sub(13, message(sub(1, headerValue), sub(1, headerValue))),
);
const request = message(sub(1, message(uint(1), uint(2))), sub(2, httpRequest));
const attributes = message(
  sub(1, peer),
  sub(2, peer),
  sub(4, request),
  entry(10, fc.oneof(fc.constantFrom('route', 'price', '__proto__', 'constructor', ''), fc.string())),
);
const checkRequestFields = message(sub(1, attributes));
const hops = fc.integer({ min: 0, max: 3 });

describe('the CheckRequest reader', () => {
  it('reads what fromCheckRequest reads, over any well-formed CheckRequest with unknown fields anywhere', () => {
    fc.assert(
      fc.property(checkRequestFields, hops, (fields, trustedHops) => {
        const bytes = encode(fields);
        const expected = generic(bytes, trustedHops);
        expect(expected).toBeDefined();
        expect(fast(bytes, trustedHops)).toStrictEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads the CheckRequests Envoy sends, with headers or with header_map', () => {
    const input = fc.record({
      method: fc.constantFrom('GET', 'post', 'PUT'),
      path: text,
      host: text,
      sourceAddress: text,
      encodeRawHeaders: fc.boolean(),
      headers: fc.dictionary(headerName, fc.oneof(text, fc.array(text, { maxLength: 3 }))),
      context: fc.dictionary(fc.string(), fc.string()),
    });
    fc.assert(
      fc.property(input, hops, (inputs, trustedHops) => {
        const bytes = serialize(checkRequest(inputs));
        expect(fast(bytes, trustedHops)).toStrictEqual(generic(bytes, trustedHops));
      }),
      { numRuns: 1000 },
    );
  });

  it('joins repeated header_map lines with a comma and prefers raw_value, as Envoy sends them', () => {
    const bytes = serialize(
      checkRequest({
        encodeRawHeaders: true,
        headers: { authorization: ['L402 a:b', 'LSAT c:d'], 'content-type': 'application/grpc' },
      }),
    );
    const read = fast(bytes, 0);
    expect(read?.request.authorization).toBe('L402 a:b,LSAT c:d');
    expect(read?.grpc).toBe(true);
    expect(read).toStrictEqual(generic(bytes, 0));
  });

  it('reads an empty message as the generic decoder does', () => {
    expect(fast(Buffer.alloc(0), 0)).toStrictEqual(generic(Buffer.alloc(0), 0));
  });

  it('never throws on garbage, and agrees with the generic decoder whenever both read it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), hops, (garbage, trustedHops) => {
        const bytes = Buffer.from(garbage);
        const read = fast(bytes, trustedHops);
        const expected = generic(bytes, trustedHops);
        if (read && expected) expect(read).toStrictEqual(expected);
      }),
      { numRuns: 5000 },
    );
  });

  it('never throws on a well-formed CheckRequest with bytes changed, cut or inserted, and agrees when both read it', () => {
    const mutation = fc.record({
      at: fc.nat(),
      cut: fc.nat({ max: 4 }),
      insert: fc.uint8Array({ maxLength: 4 }),
    });
    fc.assert(
      fc.property(
        checkRequestFields,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (fields, mutations) => {
          let bytes = encode(fields);
          for (const { at, cut, insert } of mutations) {
            const i = bytes.length === 0 ? 0 : at % bytes.length;
            bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from(insert), bytes.subarray(i + cut)]);
          }
          // Messages the reader skips unread (destination, metadata…) are not validated: it may read bytes the
          // generic decoder refuses, but never reads a field differently.
          const read = fast(bytes, 1);
          const expected = generic(bytes, 1);
          if (read && expected) expect(read).toStrictEqual(expected);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it.each([
    ['a truncated length', Buffer.from([0x0a, 0x05, 0x01])],
    ['a length past its message', encode([{ n: 1, bytes: Buffer.from([0x22, 0x09, 0x12, 0x00]) }])],
    ['a known field with the wrong wire type', Buffer.from([0x08, 0x01])],
    ['wire type 7', Buffer.from([0x0f])],
    ['a stray end group', Buffer.from([0x0c])],
    ['an unclosed group', Buffer.from([0x73])],
    ['groups nested 101 deep', encode([nest(101)])],
    ['a varint longer than 10 bytes', Buffer.from([0x70, ...new Array(11).fill(0xff), 0x01])],
  ])('refuses %s as malformed', (_name, bytes) => {
    expect(readCheckRequest(bytes)).toBeInstanceOf(MalformedCheckRequest);
  });
});

function nest(depth: number): Field {
  let field: Field = { n: 20, varint: 1n };
  for (let i = 0; i < depth; i++) field = { n: 20, group: [field] };
  return field;
}
