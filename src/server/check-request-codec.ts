/**
 * A CheckRequest reader that decodes straight from the wire only what fromCheckRequest reads: the peer
 * address, the request line, seven headers and the context extensions. Everything else (the other headers,
 * destination, metadata, TLS session) is skipped unread, and no message object is built.
 *
 * Its result equals fromCheckRequest over the generic decoder (protobufjs via proto-loader, `defaults: true`),
 * which test/unit/check-request-codec.test.ts proves by property tests: a field present twice takes its last
 * value, a message field present twice is replaced, not merged (protobufjs' rule), a map's last entry for a
 * key wins, and a message that is present but empty yields '' strings where the generic decoder's defaults do.
 *
 * Malformed bytes (truncated, lengths past their message, invalid wire types, a known field with the wrong
 * wire type, groups nested past 100) return a MalformedCheckRequest instead of throwing.
 * Field numbers: proto/envoy/service/auth/v3/{external_auth,attribute_context}.proto and
 * proto/envoy/config/core/v3/{address,base}.proto.
 */
import { MACAROON_HEADERS } from '../l402/header';
import type { CheckFields } from './envoy-grpc';

export class MalformedCheckRequest extends Error {}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;
/** protobufjs' and protoc's bound on nesting. */
const MAX_DEPTH = 100;

/**
 * Every field the generic decoder knows in each message read here, with its wire type: a known field sent
 * with another wire type is malformed (protobufjs would misread what follows), any other field is skipped.
 */
type Schema = Readonly<Record<number, number>>;
const LD = LENGTH_DELIMITED;
const CHECK_REQUEST: Schema = { 1: LD };
const ATTRIBUTE_CONTEXT: Schema = { 1: LD, 2: LD, 4: LD, 10: LD, 11: LD, 12: LD, 13: LD };
const PEER: Schema = { 1: LD, 2: LD, 3: LD, 4: LD, 5: LD };
const ADDRESS: Schema = { 1: LD, 2: LD, 3: LD };
const SOCKET_ADDRESS: Schema = { 1: VARINT, 2: LD, 3: VARINT, 4: LD, 5: LD, 6: VARINT };
const REQUEST: Schema = { 1: LD, 2: LD };
const HTTP_REQUEST: Schema = {
  1: LD,
  2: LD,
  3: LD,
  4: LD,
  5: LD,
  6: LD,
  7: LD,
  8: LD,
  9: VARINT,
  10: LD,
  11: LD,
  12: LD,
  13: LD,
};
const MAP_ENTRY: Schema = { 1: LD, 2: LD };
const HEADER_MAP: Schema = { 1: LD };
const HEADER_VALUE: Schema = { 1: LD, 2: LD, 3: LD };

/** The headers Plannt reads, as Envoy sends them (lower case); their lengths all differ. */
const WANTED = ['authorization', ...MACAROON_HEADERS, 'x-forwarded-for', 'content-type'] as const;
const WANTED_BYTES = WANTED.map((name) => Buffer.from(name, 'latin1'));
const INDEX_BY_LENGTH = new Map(WANTED.map((name, i) => [name.length, i]));
const AUTHORIZATION = 0;
const FIRST_MACAROON = 1;
const FORWARDED_FOR = 1 + MACAROON_HEADERS.length;
const CONTENT_TYPE = FORWARDED_FOR + 1;
if (INDEX_BY_LENGTH.size !== WANTED.length) throw new Error('wanted header names must differ in length');

/** Per HttpRequest: each wanted header from `headers` (map) and from `header_map` (comma-joined). */
interface HttpState {
  direct: (string | undefined)[];
  joined: (string | undefined)[];
}

export function readCheckRequest(bytes: Buffer): CheckFields | MalformedCheckRequest {
  const reader = new CheckReader(bytes);
  try {
    return reader.read();
  } catch (err) {
    if (err instanceof MalformedCheckRequest) return err;
    throw err;
  }
}

class CheckReader {
  private pos = 0;
  private fields = emptyFields();
  private http: HttpState | undefined;

  constructor(private readonly buf: Buffer) {}

  read(): CheckFields {
    const end = this.buf.length;
    while (this.pos < end) {
      const tag = this.varint32(end);
      if (tag === ((1 << 3) | LENGTH_DELIMITED)) {
        // A repeated message field replaces the earlier one, as protobufjs decodes it.
        this.fields = emptyFields();
        this.http = undefined;
        this.attributes(this.messageEnd(end));
      } else this.unknown(tag, end, CHECK_REQUEST);
    }
    const { fields, http } = this;
    if (http) {
      fields.authorization = header(http, AUTHORIZATION);
      for (let i = FIRST_MACAROON; i < FORWARDED_FOR && fields.macaroonHeader === undefined; i++)
        fields.macaroonHeader = header(http, i) || undefined;
      fields.forwardedFor = header(http, FORWARDED_FOR);
      fields.contentType = header(http, CONTENT_TYPE);
    }
    return fields;
  }

  /** envoy.service.auth.v3.AttributeContext */
  private attributes(end: number): void {
    while (this.pos < end) {
      const tag = this.varint32(end);
      switch (tag) {
        case (1 << 3) | LENGTH_DELIMITED: // source: Peer
          this.fields.peer = undefined;
          this.peer(this.messageEnd(end));
          break;
        case (4 << 3) | LENGTH_DELIMITED: // request: Request
          this.resetHttp();
          this.request(this.messageEnd(end));
          break;
        case (10 << 3) | LENGTH_DELIMITED: // context_extensions: map<string, string>
          this.extension(this.messageEnd(end));
          break;
        default:
          this.unknown(tag, end, ATTRIBUTE_CONTEXT);
      }
    }
  }

  /** AttributeContext.Peer: address (1) → config.core.v3.Address: socket_address (1) → address (2). */
  private peer(end: number): void {
    while (this.pos < end) {
      const tag = this.varint32(end);
      if (tag === ((1 << 3) | LENGTH_DELIMITED)) {
        this.fields.peer = undefined;
        const addressEnd = this.messageEnd(end);
        while (this.pos < addressEnd) {
          const inner = this.varint32(addressEnd);
          if (inner === ((1 << 3) | LENGTH_DELIMITED)) {
            const socketEnd = this.messageEnd(addressEnd);
            this.fields.peer = '';
            while (this.pos < socketEnd) {
              const field = this.varint32(socketEnd);
              if (field === ((2 << 3) | LENGTH_DELIMITED)) this.fields.peer = this.string(socketEnd);
              else {
                this.unknown(field, socketEnd, SOCKET_ADDRESS);
              }
            }
          } else {
            this.unknown(inner, addressEnd, ADDRESS);
          }
        }
      } else {
        this.unknown(tag, end, PEER);
      }
    }
  }

  /** AttributeContext.Request: http (2). */
  private request(end: number): void {
    while (this.pos < end) {
      const tag = this.varint32(end);
      if (tag === ((2 << 3) | LENGTH_DELIMITED)) {
        this.resetHttp();
        this.http = { direct: new Array(WANTED.length), joined: new Array(WANTED.length) };
        const { fields } = this;
        // Present but empty, the generic decoder's defaults give '' rather than nothing.
        fields.id = fields.method = fields.host = fields.path = '';
        this.httpRequest(this.messageEnd(end), this.http);
      } else {
        this.unknown(tag, end, REQUEST);
      }
    }
  }

  private resetHttp(): void {
    const { fields } = this;
    fields.id = fields.method = fields.host = fields.path = undefined;
    this.http = undefined;
  }

  /** AttributeContext.HttpRequest */
  private httpRequest(end: number, http: HttpState): void {
    const { fields } = this;
    while (this.pos < end) {
      const tag = this.varint32(end);
      switch (tag) {
        case (1 << 3) | LENGTH_DELIMITED:
          fields.id = this.string(end);
          break;
        case (2 << 3) | LENGTH_DELIMITED:
          fields.method = this.string(end);
          break;
        case (3 << 3) | LENGTH_DELIMITED:
          this.headerEntry(this.messageEnd(end), http);
          break;
        case (4 << 3) | LENGTH_DELIMITED:
          fields.path = this.string(end);
          break;
        case (5 << 3) | LENGTH_DELIMITED:
          fields.host = this.string(end);
          break;
        case (13 << 3) | LENGTH_DELIMITED:
          http.joined.fill(undefined);
          this.headerMap(this.messageEnd(end), http);
          break;
        default:
          this.unknown(tag, end, HTTP_REQUEST);
      }
    }
  }

  /** One entry of `headers` (map<string, string>): key (1), value (2); only wanted keys are decoded. */
  private headerEntry(end: number, http: HttpState): void {
    let wanted = -1;
    let valueStart = 0;
    let valueEnd = 0;
    while (this.pos < end) {
      const tag = this.varint32(end);
      if (tag === ((1 << 3) | LENGTH_DELIMITED)) {
        const keyEnd = this.messageEnd(end);
        wanted = this.wantedHeader(this.pos, keyEnd);
        this.pos = keyEnd;
      } else if (tag === ((2 << 3) | LENGTH_DELIMITED)) {
        valueEnd = this.messageEnd(end);
        valueStart = this.pos;
        this.pos = valueEnd;
      } else {
        this.unknown(tag, end, MAP_ENTRY);
      }
    }
    if (wanted >= 0) http.direct[wanted] = this.buf.toString('utf8', valueStart, valueEnd);
  }

  /** config.core.v3.HeaderMap: headers (1), each a HeaderValue with key (1), value (2), raw_value (3). */
  private headerMap(end: number, http: HttpState): void {
    while (this.pos < end) {
      const tag = this.varint32(end);
      if (tag !== ((1 << 3) | LENGTH_DELIMITED)) {
        this.unknown(tag, end, HEADER_MAP);
        continue;
      }
      const entryEnd = this.messageEnd(end);
      let wanted = -1;
      let valueStart = 0;
      let valueEnd = 0;
      let rawStart = 0;
      let rawEnd = 0;
      while (this.pos < entryEnd) {
        const field = this.varint32(entryEnd);
        if (field === ((1 << 3) | LENGTH_DELIMITED)) {
          const keyEnd = this.messageEnd(entryEnd);
          wanted = this.wantedHeader(this.pos, keyEnd);
          this.pos = keyEnd;
        } else if (field === ((2 << 3) | LENGTH_DELIMITED)) {
          valueEnd = this.messageEnd(entryEnd);
          valueStart = this.pos;
          this.pos = valueEnd;
        } else if (field === ((3 << 3) | LENGTH_DELIMITED)) {
          rawEnd = this.messageEnd(entryEnd);
          rawStart = this.pos;
          this.pos = rawEnd;
        } else {
          this.unknown(field, entryEnd, HEADER_VALUE);
        }
      }
      if (wanted < 0) continue;
      // raw_value is preferred when non-empty, as fromCheckRequest reads it.
      const value =
        rawEnd > rawStart
          ? this.buf.toString('utf8', rawStart, rawEnd)
          : this.buf.toString('utf8', valueStart, valueEnd);
      const before = http.joined[wanted];
      http.joined[wanted] = before === undefined ? value : `${before},${value}`;
    }
  }

  /** One entry of `context_extensions`: key (1), value (2). */
  private extension(end: number): void {
    let key = '';
    let value = '';
    while (this.pos < end) {
      const tag = this.varint32(end);
      if (tag === ((1 << 3) | LENGTH_DELIMITED)) key = this.string(end);
      else if (tag === ((2 << 3) | LENGTH_DELIMITED)) value = this.string(end);
      else {
        this.unknown(tag, end, MAP_ENTRY);
      }
    }
    const extensions = (this.fields.contextExtensions ?? {}) as Record<string, string>;
    // An own property, as protobufjs makes it, rather than a prototype change.
    if (key === '__proto__')
      Object.defineProperty(extensions, key, { value, enumerable: true, configurable: true, writable: true });
    else extensions[key] = value;
    this.fields.contextExtensions = extensions;
  }

  /** The index in WANTED of the header name in buf[start, end), or -1. */
  private wantedHeader(start: number, end: number): number {
    const index = INDEX_BY_LENGTH.get(end - start);
    if (index === undefined) return -1;
    const name = WANTED_BYTES[index] as Buffer;
    for (let i = 0; i < name.length; i++) if (this.buf[start + i] !== name[i]) return -1;
    return index;
  }

  private string(end: number): string {
    const stringEnd = this.messageEnd(end);
    const text = this.buf.toString('utf8', this.pos, stringEnd);
    this.pos = stringEnd;
    return text;
  }

  /** Reads a length and returns where the field it prefixes ends, within `end`. */
  private messageEnd(end: number): number {
    const length = this.varint32(end);
    if (length > end - this.pos) throw new MalformedCheckRequest('a length runs past its message');
    return this.pos + length;
  }

  /** A tag or length: at most 5 bytes, the value below 2^32. */
  private varint32(end: number): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= end) throw new MalformedCheckRequest('truncated varint');
      const byte = this.buf[this.pos++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) {
        if (value > 0xffffffff) break;
        return value;
      }
    }
    throw new MalformedCheckRequest('varint too long');
  }

  /** A field not read here: skipped, unless the schema knows it with another wire type. */
  private unknown(tag: number, end: number, schema: Schema): void {
    const wireType = schema[tag >>> 3];
    if (wireType !== undefined && wireType !== (tag & 7))
      throw new MalformedCheckRequest(`field ${tag >>> 3} has wire type ${tag & 7}`);
    this.skip(tag, end, 0);
  }

  /** Skips the value of an unknown field of any wire type; a group must close with its own number. */
  private skip(tag: number, end: number, depth: number): void {
    switch (tag & 7) {
      case VARINT:
        for (let i = 0; ; i++) {
          if (i === 10 || this.pos >= end) throw new MalformedCheckRequest('bad varint');
          if ((this.buf[this.pos++] as number) < 0x80) return;
        }
      case FIXED64:
        this.advance(8, end);
        return;
      case LENGTH_DELIMITED:
        this.pos = this.messageEnd(end);
        return;
      case START_GROUP: {
        if (depth >= MAX_DEPTH) throw new MalformedCheckRequest('groups nested too deep');
        for (;;) {
          const inner = this.varint32(end);
          if ((inner & 7) === END_GROUP) {
            if (inner >>> 3 !== tag >>> 3) throw new MalformedCheckRequest('mismatched end group');
            return;
          }
          this.skip(inner, end, depth + 1);
        }
      }
      case FIXED32:
        this.advance(4, end);
        return;
      default:
        throw new MalformedCheckRequest(`invalid wire type ${tag & 7}`);
    }
  }

  private advance(bytes: number, end: number): void {
    if (bytes > end - this.pos) throw new MalformedCheckRequest('truncated fixed-width field');
    this.pos += bytes;
  }
}

function emptyFields(): CheckFields {
  return {
    peer: undefined,
    id: undefined,
    method: undefined,
    host: undefined,
    path: undefined,
    authorization: undefined,
    macaroonHeader: undefined,
    forwardedFor: undefined,
    contentType: undefined,
    contextExtensions: undefined,
  };
}

/** Envoy's `headers` map wins; `header_map` (encode_raw_headers) lines are joined with ',' as Envoy joins them. */
function header(http: HttpState, index: number): string | undefined {
  return http.direct[index] ?? http.joined[index];
}
