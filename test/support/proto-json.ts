/**
 * A strict proto3-JSON checker over protobufjs reflection: the test stand-in for Envoy's own config loader,
 * since no Envoy binary is available here. Like Envoy, it rejects unknown fields (protobufjs' fromObject
 * would silently drop them), resolves `Any` by its type URL and checks the payload against that type, reads
 * the well-known types in their JSON forms (Duration "3s", wrappers as bare values, Struct), and applies
 * the protoc-gen-validate rules a config most often breaks: required messages and oneofs, string min_len,
 * repeated min_items. Deprecated fields are reported too, so an example never teaches one.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as protobuf from 'protobufjs';

const DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

/** Envoy's data-plane API and what it imports, as @grpc/grpc-js-xds ships them. */
export const ENVOY_INCLUDE_DIRS = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((d) =>
  path.join(DEPS, d),
);
// protobufjs ships google/protobuf/*.proto beside its code, descriptor.proto among them.
const PROTOBUF_DIR = path.dirname(require.resolve('protobufjs/package.json'));

export function loadProtos(files: readonly string[], includeDirs: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of [...includeDirs, PROTOBUF_DIR]) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** Every problem found in `value` read as proto3 JSON of `typeName`; empty when Envoy would accept it. */
export function checkProtoJson(root: protobuf.Root, typeName: string, value: unknown): string[] {
  const checker = new Checker(root);
  checker.message(root.lookupType(typeName), value, typeName.split('.').pop() ?? typeName);
  return checker.errors;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const TYPE_URL_PREFIX = 'type.googleapis.com/';

const DURATION = /^-?\d+(\.\d{1,9})?s$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const INTEGER = /^-?\d+$/;
const FLOAT = /^(-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|NaN|-?Infinity)$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  sint32: [-(2 ** 31), 2 ** 31 - 1],
  sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  fixed32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sint64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sfixed64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  fixed64: [0, Number.MAX_SAFE_INTEGER],
};
const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};
/** Well-known types whose JSON form is not an object of their fields; inside an Any they sit in "value". */
const SPECIAL_JSON = new Set([
  ...Object.keys(WRAPPERS),
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
]);

class Checker {
  readonly errors: string[] = [];

  constructor(private readonly root: protobuf.Root) {}

  private fail(at: string, problem: string): void {
    this.errors.push(`${at}: ${problem}`);
  }

  message(type: protobuf.Type, value: unknown, at: string) {
    const name = type.fullName.replace(/^\./, '');
    if (this.wellKnown(name, value, at)) return;
    if (!isObject(value)) return this.fail(at, `expected an object (${name})`);

    const fields = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      fields.set(f.name, f);
      fields.set(camel(f.name), f);
    }
    const present = new Set<protobuf.Field>();
    for (const [key, v] of Object.entries(value)) {
      const field = fields.get(key);
      if (!field) {
        this.fail(`${at}.${key}`, `unknown field of ${name}`);
        continue;
      }
      if (present.has(field)) this.fail(`${at}.${key}`, 'set twice (JSON and proto names)');
      if (v === null) continue; // proto3 JSON: null is the default value
      present.add(field);
      if (field.options?.deprecated) this.fail(`${at}.${key}`, 'is deprecated');
      this.field(field, v, `${at}.${key}`);
    }

    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => present.has(f)).map((f) => f.name);
      if (set.length > 1) this.fail(at, `sets ${set.join(' and ')}, members of one oneof ${oneof.name}`);
      if (set.length === 0 && oneof.options?.['(validate.required)'])
        this.fail(at, `needs one of ${oneof.fieldsArray.map((f) => f.name).join(', ')}`);
    }
    for (const f of type.fieldsArray) {
      if (present.has(f) || f.partOf) continue;
      const rules = f.options ?? {};
      if (
        Object.entries(rules).some(([k, v]) => /^\(validate\.rules\)\.\w+\.required$/.test(k) && v === true)
      )
        this.fail(`${at}.${f.name}`, 'is required');
      else if ((rules['(validate.rules).string.min_len'] ?? 0) > 0)
        this.fail(`${at}.${f.name}`, 'is required (non-empty string)');
      else if ((rules['(validate.rules).repeated.min_items'] ?? 0) > 0)
        this.fail(`${at}.${f.name}`, 'needs at least one item');
    }
  }

  private field(field: protobuf.Field, value: unknown, at: string) {
    if (field instanceof protobuf.MapField) {
      if (!isObject(value)) return this.fail(at, 'expected an object (map)');
      for (const [key, v] of Object.entries(value)) {
        this.scalar(field.keyType, key, `${at}[${key}]`, true);
        this.single(field, v, `${at}.${key}`);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) return this.fail(at, 'expected a list');
      const min = field.options?.['(validate.rules).repeated.min_items'] ?? 0;
      if (value.length < min) this.fail(at, `needs at least ${min} item(s)`);
      value.forEach((v, i) => {
        this.single(field, v, `${at}[${i}]`);
      });
      return;
    }
    this.single(field, value, at);
  }

  private single(field: protobuf.Field, value: unknown, at: string) {
    const resolved = field.resolve().resolvedType;
    if (resolved instanceof protobuf.Type) return this.message(resolved, value, at);
    if (resolved instanceof protobuf.Enum) {
      const known =
        typeof value === 'string'
          ? value in resolved.values
          : Number.isInteger(value) && Object.values(resolved.values).includes(value as number);
      if (!known) this.fail(at, `${JSON.stringify(value)} is not a value of enum ${resolved.name}`);
      return;
    }
    this.scalar(field.type, value, at);
    const minLen = field.options?.['(validate.rules).string.min_len'];
    if (typeof value === 'string' && minLen !== undefined && value.length < minLen)
      this.fail(at, `must be at least ${minLen} character(s)`);
  }

  private scalar(type: string, value: unknown, at: string, mapKey = false) {
    const bad = (what: string) => this.fail(at, `expected ${what}, got ${JSON.stringify(value)}`);
    if (type === 'string') return void (typeof value === 'string' || bad('a string'));
    if (type === 'bool') {
      if (mapKey) return void (value === 'true' || value === 'false' || bad('true or false'));
      return void (typeof value === 'boolean' || bad('a boolean'));
    }
    if (type === 'bytes') return void ((typeof value === 'string' && BASE64.test(value)) || bad('base64'));
    if (type === 'double' || type === 'float') {
      return void (
        typeof value === 'number' ||
        (typeof value === 'string' && FLOAT.test(value)) ||
        bad('a number')
      );
    }
    const range = RANGES[type];
    if (!range) return bad(`a ${type}`);
    const n = typeof value === 'string' && INTEGER.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < range[0] || n > range[1]) bad(`a ${type}`);
  }

  /** True when `name` is a well-known type with its own JSON form (and the value was checked as such). */
  private wellKnown(name: string, value: unknown, at: string): boolean {
    const wrapped = WRAPPERS[name];
    if (wrapped) {
      this.scalar(wrapped, value, at);
      return true;
    }
    switch (name) {
      case 'google.protobuf.Any':
        this.any(value, at);
        return true;
      case 'google.protobuf.Duration':
        if (typeof value !== 'string' || !DURATION.test(value))
          this.fail(at, `expected a duration like "3s" or "0.25s", got ${JSON.stringify(value)}`);
        return true;
      case 'google.protobuf.Timestamp':
        if (typeof value !== 'string' || !TIMESTAMP.test(value)) this.fail(at, 'expected an RFC 3339 time');
        return true;
      case 'google.protobuf.FieldMask':
        if (typeof value !== 'string') this.fail(at, 'expected a field mask string');
        return true;
      case 'google.protobuf.Struct':
        if (!isObject(value)) this.fail(at, 'expected an object (Struct)');
        return true;
      case 'google.protobuf.Value':
        return true;
      case 'google.protobuf.ListValue':
        if (!Array.isArray(value)) this.fail(at, 'expected a list (ListValue)');
        return true;
      case 'google.protobuf.Empty':
        if (!isObject(value) || Object.keys(value).length) this.fail(at, 'expected {}');
        return true;
      default:
        return false;
    }
  }

  private any(value: unknown, at: string) {
    if (!isObject(value)) return this.fail(at, 'expected an object with "@type" (Any)');
    const { '@type': url, ...rest } = value;
    if (typeof url !== 'string' || !url.startsWith(TYPE_URL_PREFIX))
      return this.fail(at, `"@type" must be ${TYPE_URL_PREFIX}<message>, got ${JSON.stringify(url)}`);
    const name = url.slice(TYPE_URL_PREFIX.length);
    let type: protobuf.Type;
    try {
      type = this.root.lookupType(name);
    } catch {
      return this.fail(at, `"@type" ${name} is not a known message type`);
    }
    const label = `${at}<${type.name}>`;
    if (SPECIAL_JSON.has(name)) {
      const keys = Object.keys(rest);
      if (keys.length !== 1 || keys[0] !== 'value') return this.fail(label, 'expected exactly {"value": …}');
      return this.message(type, rest.value, label);
    }
    this.message(type, rest, label);
  }
}
