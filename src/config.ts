/**
 * Configuration: a YAML file plus a few environment variables, parsed once at start and validated with zod.
 * Nothing else reads the environment. Every error names the field it is about.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLError } from 'yaml';
import { z } from 'zod';
import { MAX_USES, NAME_PATTERN, ROUTE_ID_PATTERN } from './core/routes';
import { MIN_ROOT_KEY_BYTES, weakKeyProblem } from './l402/keys';

const hostPort = z
  .string()
  .regex(/^[^\s:]*:\d{1,5}$/, 'expected host:port')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, { message: 'port must be 0 to 65535' });
const name = z.string().regex(NAME_PATTERN, 'lower-case letters, digits and dashes, at most 63');
const routeId = z.string().regex(ROUTE_ID_PATTERN, 'letters, digits and . _ : / -, at most 128');
const seconds = z.number().int().positive();
const hexKey = z
  .string()
  .regex(/^[0-9a-fA-F]+$/, 'expected hex')
  .refine((s) => s.length >= MIN_ROOT_KEY_BYTES * 2 && s.length % 2 === 0, {
    message: `root keys must be at least ${MIN_ROOT_KEY_BYTES} bytes (${MIN_ROOT_KEY_BYTES * 2} hex characters)`,
  })
  .superRefine((s, ctx) => {
    const problem = weakKeyProblem(Buffer.from(s, 'hex'));
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const pathMatch = z.union([
  z.object({ prefix: z.string().startsWith('/') }).strict(),
  z.object({ exact: z.string().startsWith('/') }).strict(),
  z
    .object({ regex: z.string().max(512) })
    .strict()
    .refine((p) => isRegex(p.regex), { message: 'not a valid regular expression' }),
]);

const route = z
  .object({
    id: routeId,
    service: name,
    price_sats: z.number().int().min(0).max(21e14),
    host: z.string().min(1).optional(),
    path: pathMatch.default({ prefix: '/' }),
    methods: z.array(z.string().min(1)).optional(),
    capability: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/)
      .optional(),
    token_lifetime_seconds: seconds.optional(),
    invoice_expiry_seconds: seconds.optional(),
    // Requests one token buys: 1 (single use), N (a bundle) or 'unlimited' (a pass until the token expires).
    uses: z
      .union([z.number().int().min(1).max(MAX_USES), z.literal('unlimited')], {
        errorMap: () => ({ message: `expected a whole number from 1 to ${MAX_USES}, or "unlimited"` }),
      })
      .optional(),
    max_requests_per_second: z.number().int().min(1).max(1_000_000).optional(),
    // shadow: decide and record as if enforcing, but allow, so pricing can be watched before it is enforced.
    mode: z.enum(['enforce', 'shadow']).default('enforce'),
  })
  .strict()
  .refine((r) => r.max_requests_per_second === undefined || (r.uses ?? 1) !== 1, {
    message: 'needs uses above 1 or "unlimited": a single-use token has no rate to bound',
    path: ['max_requests_per_second'],
  });

const lnd = z
  .object({
    socket: hostPort,
    cert_file: z.string().optional(),
    cert_base64: z.string().optional(),
    macaroon_file: z.string().optional(),
    macaroon_base64: z.string().optional(),
  })
  .strict()
  .refine((l) => l.macaroon_file || l.macaroon_base64, { message: 'set macaroon_file or macaroon_base64' });

const endpoint = z.object({ host: z.string(), port: z.number().int().min(1).max(65535) }).strict();

const redis = z
  .object({
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'expected redis:// or rediss://')
      .optional(),
    sentinels: z.array(endpoint).min(1).optional(),
    master_name: z.string().optional(),
    cluster_nodes: z.array(endpoint).min(1).optional(),
    password: z.string().optional(),
    // Up to 4 bytes keep the key (prefix, 16 bytes of hash, SDS's 4) in jemalloc's 24-byte class (docs/benchmarks.md).
    key_prefix: z.string().max(64).default('p:s:'),
    // The prefix of a previous version's keys (with the whole hash), during an upgrade only (docs/upgrading.md):
    // every use is counted under both layouts, so old and new pods refuse a token the other spent. It may
    // equal key_prefix: the keys differ in length.
    legacy_key_prefix: z.string().max(64).optional(),
    command_timeout_ms: z.number().int().positive().default(250),
  })
  .strict()
  .refine((r) => [r.url, r.sentinels, r.cluster_nodes].filter(Boolean).length === 1, {
    message: 'set exactly one of url, sentinels (with master_name) or cluster_nodes',
  })
  .refine((r) => !r.sentinels || r.master_name, { message: 'sentinels need master_name' });

export const configSchema = z
  .object({
    listen: z
      .object({
        grpc: hostPort.default('0.0.0.0:9001'),
        admin: hostPort.default('0.0.0.0:9090'),
        http: hostPort.default('0.0.0.0:9002'),
      })
      .strict()
      .default({}),
    http_authz: z
      .object({
        // Envoy's http_service.path_prefix: '' or a path without a trailing slash.
        path_prefix: z
          .string()
          .regex(/^(\/[^\s?#]*[^\s?#/])?$/, 'empty, or starting with / and not ending with /')
          .default(''),
        timeout_ms: z.number().int().positive().max(600_000).default(3000),
        // Only when nothing but Envoy can reach the port: other proxies pass a client's header through.
        trust_expected_timeout_header: z.boolean().default(false),
      })
      .strict()
      .default({}),
    location: z.string().max(128).default('plannt'),
    tls: z
      .object({
        cert_file: z.string().min(1),
        key_file: z.string().min(1),
        client_ca_file: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    client_address: z
      .object({ trusted_hops: z.number().int().min(0).max(16).default(0) })
      .strict()
      .default({}),
    challenge_limits: z
      .object({
        per_client_per_second: z.number().min(0).max(1e6).default(10),
        per_client_burst: z.number().int().min(1).max(1e6).default(100),
        max_clients: z.number().int().min(1).max(10_000_000).default(100_000),
        max_concurrent_invoices: z.number().int().min(0).max(1e6).default(64),
      })
      .strict()
      .default({}),
    root_keys: z
      .array(z.object({ id: z.number().int().min(0).max(0xffffffff), key: hexKey }).strict())
      .min(1, 'at least one root key is required'),
    current_key_id: z.number().int().min(0).max(0xffffffff),
    backend: z
      .object({
        kind: z.enum(['dev', 'lnd']),
        timeout_ms: z.number().int().positive().default(3000),
        lnd: lnd.optional(),
      })
      .strict()
      .refine((b) => b.kind !== 'lnd' || b.lnd, { message: 'backend.lnd is required when kind is lnd' }),
    spent_set: z
      .object({
        kind: z.enum(['memory', 'redis']),
        on_error: z.enum(['fail_closed', 'local_fallback']).default('fail_closed'),
        max_entries: z.number().int().positive().default(1_000_000),
        clock_skew_seconds: z.number().int().min(0).max(3600).default(30),
        redis: redis.optional(),
      })
      .strict()
      .refine((s) => s.kind !== 'redis' || s.redis, {
        message: 'spent_set.redis is required when kind is redis',
      }),
    routes: z.array(route).default([]),
    unmatched: z
      .object({
        action: z.enum(['deny', 'allow', 'price']).default('deny'),
        service: name.optional(),
        price_sats: z.number().int().min(1).optional(),
      })
      .strict()
      .refine((u) => u.action !== 'price' || (u.service && u.price_sats), {
        message: 'action "price" needs service and price_sats',
      })
      .default({}),
    defaults: z
      .object({ token_lifetime_seconds: seconds.default(3600), invoice_expiry_seconds: seconds.default(600) })
      .strict()
      .default({}),
    upstream: z
      .object({ strip_authorization: z.boolean().default(true) })
      .strict()
      .default({}),
    limits: z
      .object({
        max_authorization_bytes: z.number().int().min(256).max(65536).default(8192),
        max_macaroons: z.number().int().min(1).max(16).default(4),
        max_macaroon_bytes: z.number().int().min(128).max(16384).default(4096),
        max_caveats: z.number().int().min(4).max(64).default(32),
      })
      .strict()
      .default({}),
    retry_after_seconds: z.number().int().positive().default(5),
    // Paid-route checks in progress at once (0 = no cap); beyond it a check is shed with 503 overloaded.
    admission: z
      .object({ max_in_flight: z.number().int().min(0).max(1e6).default(1000) })
      .strict()
      .default({}),
    drain_seconds: z.number().min(0).max(300).default(5),
    shutdown_grace_ms: z.number().int().positive().default(10_000),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // Processes sharing the listening ports; unset: the CPUs the container may use (see worker-count.ts).
    workers: z.number().int().min(1).max(256).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.workers !== undefined && c.workers > 1 && c.spent_set.kind === 'memory') {
      ctx.addIssue({
        code: 'custom',
        path: ['workers'],
        message:
          'more than 1 needs the redis spent-set: each worker has its own memory, so a token would spend once per worker',
      });
    }
    if (c.workers !== undefined && c.workers > 1 && c.backend.kind === 'dev') {
      ctx.addIssue({
        code: 'custom',
        path: ['workers'],
        message:
          'more than 1 needs an lnd backend: the dev backend keeps its invoices in one process, so POST /dev/pay could not pay an invoice another worker made',
      });
    }
    const listeners = Object.entries(c.listen);
    listeners.forEach(([name, address], i) => {
      const other = listeners.slice(0, i).find(([, earlier]) => sameSocket(earlier, address));
      if (other)
        ctx.addIssue({
          code: 'custom',
          path: ['listen', name],
          message: `uses the same port as listen.${other[0]}`,
        });
    });
    if (!c.root_keys.some((k) => k.id === c.current_key_id)) {
      ctx.addIssue({
        code: 'custom',
        path: ['current_key_id'],
        message: 'is not the id of any root_keys entry',
      });
    }
    if (new Set(c.root_keys.map((k) => k.id)).size !== c.root_keys.length) {
      ctx.addIssue({ code: 'custom', path: ['root_keys'], message: 'ids must be unique' });
    }
    if (new Set(c.routes.map((r) => r.id)).size !== c.routes.length) {
      ctx.addIssue({ code: 'custom', path: ['routes'], message: 'route ids must be unique' });
    }
    if (c.defaults.token_lifetime_seconds <= c.defaults.invoice_expiry_seconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['defaults', 'token_lifetime_seconds'],
        message: 'must be longer than defaults.invoice_expiry_seconds',
      });
    }
    c.routes.forEach((r, i) => {
      const life = r.token_lifetime_seconds ?? c.defaults.token_lifetime_seconds;
      const expiry = r.invoice_expiry_seconds ?? c.defaults.invoice_expiry_seconds;
      if (life <= expiry) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'token_lifetime_seconds'],
          message: 'must be longer than the invoice expiry, or a token paid late would be born expired',
        });
      }
    });
  });

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

/** Environment variables that override the file, for secrets and per-deployment values. */
export const ENV_OVERRIDES = {
  PLANNT_ROOT_KEYS: 'root_keys as "id:hex,id:hex" (the first is current unless PLANNT_CURRENT_KEY_ID is set)',
  PLANNT_ROOT_KEYS_FILE:
    'a file holding PLANNT_ROOT_KEYS (a mounted Secret: re-read on reload, so keys rotate without a restart)',
  PLANNT_CURRENT_KEY_ID: 'current_key_id',
  PLANNT_BACKEND: 'backend.kind',
  PLANNT_LND_SOCKET: 'backend.lnd.socket',
  PLANNT_LND_CERT_BASE64: 'backend.lnd.cert_base64',
  PLANNT_LND_MACAROON_BASE64: 'backend.lnd.macaroon_base64',
  PLANNT_SPENT_SET: 'spent_set.kind',
  PLANNT_REDIS_URL: 'spent_set.redis.url',
  PLANNT_REDIS_PASSWORD: 'spent_set.redis.password (Sentinel/Cluster), kept out of the config file',
  PLANNT_LOG_LEVEL: 'log_level',
} as const;

export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = {}): Config {
  const fields = raw ?? {};
  // The environment overrides fields of a mapping; a scalar or a list has none to override.
  if (typeof fields !== 'object' || Array.isArray(fields))
    throw new ConfigError('invalid configuration:\n  (root): expected a mapping of fields');
  const merged = applyEnv(structuredClone(fields) as Record<string, unknown>, env);
  const result = configSchema.safeParse(merged, { errorMap: withoutValues });
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** A field name worth quoting in an error; anything else might be a secret pasted in the wrong place. */
// Letters and underscores only: keys, passwords and tokens almost always hold digits.
const FIELD_NAME = /^[a-z_]{1,40}$/;

/**
 * zod quotes the received value in some messages (an enum, a literal) and every unknown key; a secret in
 * the wrong field would be printed to stderr and collected by the log pipeline. Name the field, not the value.
 */
const withoutValues: z.ZodErrorMap = (issue, ctx) => {
  if (issue.code === 'invalid_enum_value')
    return { message: `expected one of ${issue.options.map((o) => `'${String(o)}'`).join(' | ')}` };
  if (issue.code === 'invalid_literal') return { message: `expected ${JSON.stringify(issue.expected)}` };
  if (issue.code === 'unrecognized_keys') {
    const named = issue.keys.filter((k) => FIELD_NAME.test(k));
    const unnamed = issue.keys.length - named.length;
    const parts = [...named.map((k) => `'${k}'`), ...(unnamed ? [`${unnamed} more not shown`] : [])];
    return { message: `unknown field(s): ${parts.join(', ')}` };
  }
  return { message: ctx.defaultError };
};

/** Two listen addresses that would collide: the same port on the same or a wildcard host (port 0 is free). */
function sameSocket(a: string, b: string): boolean {
  const [hostA, portA] = splitHostPort(a);
  const [hostB, portB] = splitHostPort(b);
  if (portA === 0 || portA !== portB) return false;
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::' || h === '[::]';
  return hostA === hostB || wildcard(hostA) || wildcard(hostB);
}

/** A listen address's host (every interface, 0.0.0.0, when empty) and port. */
export function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon) || '0.0.0.0', Number(address.slice(colon + 1))];
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML${yamlErrorPosition(err)}`);
  }
  return parseConfig(raw, env);
}

/**
 * Where the YAML parser stopped, and why, in its own words minus the source: the parser's message quotes
 * the offending line, which may hold a root key or a password.
 */
function yamlErrorPosition(err: unknown): string {
  if (!(err instanceof YAMLError)) return ': the parser failed';
  const at = err.linePos?.[0];
  const where = at ? ` at line ${at.line}, column ${at.col}` : '';
  return `${where}: ${err.code} (the text there is not shown: it may hold a secret)`;
}

function applyEnv(c: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const obj = (parent: Record<string, unknown>, key: string): Record<string, unknown> => {
    const value = parent[key];
    if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
    parent[key] = {};
    return parent[key] as Record<string, unknown>;
  };
  const rootKeys = env.PLANNT_ROOT_KEYS_FILE ? readKeysFile(env.PLANNT_ROOT_KEYS_FILE) : env.PLANNT_ROOT_KEYS;
  if (rootKeys) {
    const keys = rootKeys.split(',').map((pair) => {
      const [id = '', key = ''] = pair.trim().split(':');
      return { id: /^\d+$/.test(id) ? Number(id) : Number.NaN, key };
    });
    c.root_keys = keys;
    c.current_key_id = keys[0]?.id;
  }
  if (env.PLANNT_CURRENT_KEY_ID) c.current_key_id = Number(env.PLANNT_CURRENT_KEY_ID);
  if (env.PLANNT_BACKEND) obj(c, 'backend').kind = env.PLANNT_BACKEND;
  const lndEnv = {
    socket: env.PLANNT_LND_SOCKET,
    cert_base64: env.PLANNT_LND_CERT_BASE64,
    macaroon_base64: env.PLANNT_LND_MACAROON_BASE64,
  };
  for (const [key, value] of Object.entries(lndEnv)) if (value) obj(obj(c, 'backend'), 'lnd')[key] = value;
  if (env.PLANNT_SPENT_SET) obj(c, 'spent_set').kind = env.PLANNT_SPENT_SET;
  if (env.PLANNT_REDIS_URL) obj(obj(c, 'spent_set'), 'redis').url = env.PLANNT_REDIS_URL;
  if (env.PLANNT_REDIS_PASSWORD) obj(obj(c, 'spent_set'), 'redis').password = env.PLANNT_REDIS_PASSWORD;
  if (env.PLANNT_LOG_LEVEL) c.log_level = env.PLANNT_LOG_LEVEL;
  return c;
}

function readKeysFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    // The code only (ENOENT, EACCES): never the contents.
    throw new ConfigError(
      `cannot read PLANNT_ROOT_KEYS_FILE ${file}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
}

function isRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
