import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Config, ConfigError, loadConfigFile, parseConfig } from '../../src/config';
import { defaultWorkers } from '../../src/worker-count';

const HEX_A = '1ed3ab131d5250a4d30e6853cd602407fb179123c89fdebc945c8508bdf046d2';
const HEX_B = '15eb5dea6d64ef19da628f09419bd731baf747a975684c67c6cf3fccd242f3af';
const EXAMPLE_FILE = path.resolve(__dirname, '..', '..', 'plannt.example.yaml');

/** Every field set, none left to defaults. */
function fullExample(): Record<string, unknown> {
  return {
    listen: { grpc: '0.0.0.0:9001', admin: '127.0.0.1:9090', http: '0.0.0.0:9102' },
    http_authz: { path_prefix: '/authz', timeout_ms: 1500, trust_expected_timeout_header: true },
    location: 'plannt-prod',
    tls: { cert_file: '/tls/tls.crt', key_file: '/tls/tls.key', client_ca_file: '/tls/ca.crt' },
    client_address: { trusted_hops: 2 },
    challenge_limits: {
      per_client_per_second: 0.5,
      per_client_burst: 5,
      max_clients: 1000,
      max_concurrent_invoices: 8,
    },
    root_keys: [
      { id: 1, key: HEX_A },
      { id: 2, key: HEX_B },
    ],
    current_key_id: 2,
    backend: {
      kind: 'lnd',
      timeout_ms: 2000,
      lnd: { socket: 'lnd.lightning.svc:10009', cert_base64: 'Y2VydA==', macaroon_base64: 'bWFj' },
    },
    spent_set: {
      kind: 'redis',
      on_error: 'local_fallback',
      max_entries: 5000,
      clock_skew_seconds: 10,
      redis: { url: 'rediss://redis:6380/0', key_prefix: 'p:', command_timeout_ms: 100 },
    },
    routes: [
      {
        id: 'generate',
        service: 'inference',
        price_sats: 10,
        host: '*.example.com',
        path: { prefix: '/v1/generate' },
        methods: ['POST'],
        capability: 'gen',
        token_lifetime_seconds: 7200,
        invoice_expiry_seconds: 300,
        mode: 'enforce',
      },
      {
        id: 'item',
        service: 'inference',
        price_sats: 2,
        path: { regex: '^/v1/items/\\d+$' },
        mode: 'shadow',
      },
      { id: 'status', service: 'public', price_sats: 0, path: { exact: '/status' }, mode: 'enforce' },
    ],
    unmatched: { action: 'price', service: 'inference', price_sats: 1 },
    defaults: { token_lifetime_seconds: 1800, invoice_expiry_seconds: 120 },
    upstream: { strip_authorization: false },
    limits: { max_authorization_bytes: 4096, max_macaroons: 2, max_macaroon_bytes: 2048, max_caveats: 16 },
    retry_after_seconds: 7,
    admission: { max_in_flight: 200 },
    drain_seconds: 2,
    shutdown_grace_ms: 5000,
    log_level: 'debug',
  };
}

/** The smallest valid configuration. */
function minimal(): Record<string, unknown> {
  return {
    root_keys: [{ id: 1, key: HEX_A }],
    current_key_id: 1,
    backend: { kind: 'dev' },
    spent_set: { kind: 'memory' },
  };
}

function configError(raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(raw, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('parseConfig accepted the configuration');
}

function withRoutes(routes: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...minimal(), routes, ...extra };
}

const route = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  service: 'weather',
  price_sats: 10,
  ...extra,
});

describe('a full example', () => {
  it('is accepted with every value kept', () => {
    const config: Config = parseConfig(fullExample());
    expect(config).toEqual(fullExample());
  });

  it('plannt.example.yaml is accepted once PLANNT_ROOT_KEYS supplies a real key', () => {
    const config = loadConfigFile(EXAMPLE_FILE, { PLANNT_ROOT_KEYS: `1:${HEX_A}` });
    expect(config.root_keys).toEqual([{ id: 1, key: HEX_A }]);
    expect(config.current_key_id).toBe(1);
    expect(config.routes.map((r) => r.id)).toEqual(['generate', 'embeddings', 'search', 'status']);
  });

  it('plannt.example.yaml as shipped is rejected for its placeholder key, naming the field', () => {
    expect(() => loadConfigFile(EXAMPLE_FILE, {})).toThrow(/root_keys\.0\.key/);
  });

  it('a minimal configuration gets the documented defaults', () => {
    const config = parseConfig(minimal());
    expect(config).toMatchObject({
      listen: { grpc: '0.0.0.0:9001', admin: '0.0.0.0:9090', http: '0.0.0.0:9002' },
      http_authz: { path_prefix: '', timeout_ms: 3000, trust_expected_timeout_header: false },
      location: 'plannt',
      backend: { kind: 'dev', timeout_ms: 3000 },
      spent_set: { kind: 'memory', on_error: 'fail_closed', max_entries: 1_000_000, clock_skew_seconds: 30 },
      routes: [],
      unmatched: { action: 'deny' },
      defaults: { token_lifetime_seconds: 3600, invoice_expiry_seconds: 600 },
      upstream: { strip_authorization: true },
      limits: { max_authorization_bytes: 8192, max_macaroons: 4, max_macaroon_bytes: 4096, max_caveats: 32 },
      retry_after_seconds: 5,
      admission: { max_in_flight: 1000 },
      drain_seconds: 5,
      shutdown_grace_ms: 10_000,
      log_level: 'info',
    });
  });

  it('a route without a path matches every path', () => {
    expect(parseConfig(withRoutes([route('r')])).routes[0]?.path).toEqual({ prefix: '/' });
  });

  it('does not modify the object it is given', () => {
    const raw = minimal();
    const before = structuredClone(raw);
    parseConfig(raw, { PLANNT_ROOT_KEYS: `1:${HEX_B}`, PLANNT_LOG_LEVEL: 'warn' });
    expect(raw).toEqual(before);
  });
});

describe('root keys', () => {
  it('rejects a key shorter than 32 bytes, naming root_keys.0.key', () => {
    const raw = { ...minimal(), root_keys: [{ id: 1, key: 'ab'.repeat(31) }] };
    const message = configError(raw);
    expect(message).toMatch(/root_keys\.0\.key: root keys must be at least 32 bytes/);
  });

  it('names the index of the offending key', () => {
    const raw = {
      ...minimal(),
      root_keys: [
        { id: 1, key: HEX_A },
        { id: 2, key: 'abc' },
      ],
    };
    expect(configError(raw)).toMatch(/root_keys\.1\.key/);
  });

  it.each([
    ['non-hex characters', `${'zz'}${HEX_A.slice(2)}`],
    ['an odd number of hex digits', `${HEX_A}f`],
    ['an empty key', ''],
  ])('rejects a key with %s', (_, key) => {
    expect(configError({ ...minimal(), root_keys: [{ id: 1, key }] })).toMatch(/root_keys\.0\.key/);
  });

  it('never echoes a key in an error message', () => {
    const secret = 'cd'.repeat(31);
    expect(configError({ ...minimal(), root_keys: [{ id: 1, key: secret }] })).not.toContain(secret);
  });

  it.each([
    ['all zeros', '00'.repeat(32)],
    ['one repeated byte', 'ab'.repeat(32)],
    ['a repeated word', 'deadbeef'.repeat(8)],
    ['a counter', Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, '0')).join('')],
  ])('refuses a key that is not random: %s', (_, key) => {
    expect(configError({ ...minimal(), root_keys: [{ id: 1, key }] })).toMatch(
      /root_keys\.0\.key: too regular to be random/,
    );
  });

  it('refuses a weak key from PLANNT_ROOT_KEYS too', () => {
    expect(() => parseConfig(minimal(), { PLANNT_ROOT_KEYS: `1:${'00'.repeat(32)}` })).toThrow(
      /root_keys\.0\.key: too regular/,
    );
  });

  it('rejects a current_key_id that names no key', () => {
    expect(configError({ ...minimal(), current_key_id: 9 })).toMatch(
      /current_key_id: is not the id of any root_keys entry/,
    );
  });

  it('rejects a configuration without current_key_id', () => {
    const { current_key_id: _, ...raw } = minimal();
    expect(configError(raw)).toMatch(/current_key_id/);
  });

  it('rejects a configuration without root keys', () => {
    expect(configError({ ...minimal(), root_keys: [] })).toMatch(
      /root_keys: at least one root key is required/,
    );
  });

  it('rejects duplicate key ids', () => {
    const raw = {
      ...minimal(),
      root_keys: [
        { id: 1, key: HEX_A },
        { id: 1, key: HEX_B },
      ],
    };
    expect(configError(raw)).toMatch(/root_keys: ids must be unique/);
  });

  it('rejects a key id outside uint32', () => {
    const raw = { ...minimal(), root_keys: [{ id: 2 ** 32, key: HEX_A }], current_key_id: 2 ** 32 };
    expect(configError(raw)).toMatch(/root_keys\.0\.id/);
  });
});

describe('routes', () => {
  it('takes mode enforce (the default) or shadow, and names a bad one', () => {
    expect(parseConfig(withRoutes([route('a')]), {}).routes[0]?.mode).toBe('enforce');
    expect(parseConfig(withRoutes([route('a', { mode: 'shadow' })]), {}).routes[0]?.mode).toBe('shadow');
    expect(configError(withRoutes([route('a', { mode: 'loud' })]))).toMatch(/routes\.0\.mode/);
  });

  it('sells single-use tokens by default, bundles (uses: N) and passes (uses: unlimited), naming a bad value', () => {
    expect(parseConfig(withRoutes([route('a')]), {}).routes[0]?.uses).toBeUndefined();
    expect(parseConfig(withRoutes([route('a', { uses: 10 })]), {}).routes[0]?.uses).toBe(10);
    const pass = parseConfig(withRoutes([route('a', { uses: 'unlimited', max_requests_per_second: 5 })]), {});
    expect(pass.routes[0]).toMatchObject({ uses: 'unlimited', max_requests_per_second: 5 });
    for (const bad of [0, -1, 1.5, 'forever', '10']) {
      expect(configError(withRoutes([route('a', { uses: bad })]))).toMatch(/routes\.0\.uses: /);
    }
    expect(configError(withRoutes([route('a', { uses: 'unlimited', max_requests_per_second: 0 })]))).toMatch(
      /routes\.0\.max_requests_per_second/,
    );
  });

  it('refuses a rate bound on a single-use route, naming the field', () => {
    expect(configError(withRoutes([route('a', { max_requests_per_second: 5 })]))).toMatch(
      /routes\.0\.max_requests_per_second: needs uses above 1/,
    );
  });

  it('rejects duplicate route ids', () => {
    expect(configError(withRoutes([route('a'), route('b'), route('a')]))).toMatch(
      /routes: route ids must be unique/,
    );
  });

  it('rejects a token lifetime equal to the invoice expiry', () => {
    const raw = withRoutes([route('a', { token_lifetime_seconds: 600, invoice_expiry_seconds: 600 })]);
    expect(configError(raw)).toMatch(
      /routes\.0\.token_lifetime_seconds: must be longer than the invoice expiry/,
    );
  });

  it('rejects a route lifetime shorter than the default invoice expiry', () => {
    const raw = withRoutes([route('a'), route('b', { token_lifetime_seconds: 300 })]);
    expect(configError(raw)).toMatch(/routes\.1\.token_lifetime_seconds/);
  });

  it('rejects a route invoice expiry longer than the default lifetime', () => {
    const raw = withRoutes([route('a', { invoice_expiry_seconds: 3600 })]);
    expect(configError(raw)).toMatch(/routes\.0\.token_lifetime_seconds/);
  });

  it('rejects default lifetimes that leave every route with a lifetime ≤ its invoice expiry', () => {
    const raw = withRoutes([route('a')], {
      defaults: { token_lifetime_seconds: 600, invoice_expiry_seconds: 900 },
    });
    expect(configError(raw)).toMatch(/routes\.0\.token_lifetime_seconds/);
  });

  it('rejects a default token lifetime ≤ the default invoice expiry even without routes', () => {
    // The defaults price unmatched requests and routes priced by Envoy context_extensions.
    const raw = {
      ...minimal(),
      unmatched: { action: 'price', service: 'weather', price_sats: 1 },
      defaults: { token_lifetime_seconds: 600, invoice_expiry_seconds: 900 },
    };
    expect(configError(raw)).toMatch(/defaults/);
  });

  it.each([
    ['an upper-case service', { service: 'Weather' }],
    ['a negative price', { price_sats: -1 }],
    ['a fractional price', { price_sats: 1.5 }],
    ['a relative prefix', { path: { prefix: 'v1' } }],
    ['an invalid regex', { path: { regex: '([' } }],
    ['two path kinds at once', { path: { prefix: '/a', exact: '/a' } }],
    ['an unknown field', { prize_sats: 1 }],
  ])('rejects %s', (_, extra) => {
    expect(configError(withRoutes([route('a', extra)]))).toMatch(/routes\.0/);
  });

  it('rejects the price policy for unmatched requests without service and price', () => {
    expect(configError({ ...minimal(), unmatched: { action: 'price' } })).toMatch(
      /unmatched: action "price" needs service and price_sats/,
    );
  });
});

describe('backends', () => {
  it('rejects the lnd backend without an lnd block', () => {
    expect(configError({ ...minimal(), backend: { kind: 'lnd' } })).toMatch(
      /backend: backend\.lnd is required when kind is lnd/,
    );
  });

  it('rejects an lnd block without a macaroon', () => {
    const raw = { ...minimal(), backend: { kind: 'lnd', lnd: { socket: 'lnd:10009' } } };
    expect(configError(raw)).toMatch(/backend\.lnd: set macaroon_file or macaroon_base64/);
  });

  it('rejects an lnd socket that is not host:port', () => {
    const raw = { ...minimal(), backend: { kind: 'lnd', lnd: { socket: 'lnd', macaroon_base64: 'bWFj' } } };
    expect(configError(raw)).toMatch(/backend\.lnd\.socket: expected host:port/);
  });

  it('rejects the redis spent set without a redis block', () => {
    expect(configError({ ...minimal(), spent_set: { kind: 'redis' } })).toMatch(
      /spent_set: spent_set\.redis is required when kind is redis/,
    );
  });

  it('rejects a redis block naming both a url and sentinels', () => {
    const raw = {
      ...minimal(),
      spent_set: {
        kind: 'redis',
        redis: { url: 'redis://r:6379', sentinels: [{ host: 's', port: 26379 }], master_name: 'm' },
      },
    };
    expect(configError(raw)).toMatch(/spent_set\.redis: set exactly one of/);
  });

  it('rejects sentinels without master_name', () => {
    const raw = {
      ...minimal(),
      spent_set: { kind: 'redis', redis: { sentinels: [{ host: 's', port: 1 }] } },
    };
    expect(configError(raw)).toMatch(/spent_set\.redis: sentinels need master_name/);
  });

  it('rejects an unknown top-level field', () => {
    expect(configError({ ...minimal(), rotes: [] })).toMatch(/rotes/);
  });
});

describe('HTTP authorization', () => {
  it.each(['authz', '/authz/', '/au thz', '/authz?x'])(
    'rejects the path prefix %j, naming the field',
    (prefix) => {
      expect(configError({ ...minimal(), http_authz: { path_prefix: prefix } })).toMatch(
        /http_authz\.path_prefix/,
      );
    },
  );

  it('accepts a nested path prefix', () => {
    expect(
      parseConfig({ ...minimal(), http_authz: { path_prefix: '/ext/authz' } }).http_authz.path_prefix,
    ).toBe('/ext/authz');
  });

  it('rejects a listen.http that is not host:port', () => {
    expect(configError({ ...minimal(), listen: { http: '9002' } })).toMatch(
      /listen\.http: expected host:port/,
    );
  });
});

describe('environment overrides', () => {
  it('PLANNT_ROOT_KEYS="1:<hex>,2:<hex>" replaces the root keys and makes the first current', () => {
    const { root_keys: _k, current_key_id: _c, ...raw } = minimal();
    const config = parseConfig(raw, { PLANNT_ROOT_KEYS: `1:${HEX_A},2:${HEX_B}` });
    expect(config.root_keys).toEqual([
      { id: 1, key: HEX_A },
      { id: 2, key: HEX_B },
    ]);
    expect(config.current_key_id).toBe(1);
  });

  it('PLANNT_ROOT_KEYS tolerates spaces after the commas', () => {
    const config = parseConfig(minimal(), { PLANNT_ROOT_KEYS: `1:${HEX_A}, 2:${HEX_B}` });
    expect(config.root_keys.map((k) => k.id)).toEqual([1, 2]);
  });

  it('PLANNT_CURRENT_KEY_ID picks the current key among them', () => {
    const config = parseConfig(minimal(), {
      PLANNT_ROOT_KEYS: `1:${HEX_A},2:${HEX_B}`,
      PLANNT_CURRENT_KEY_ID: '2',
    });
    expect(config.current_key_id).toBe(2);
  });

  it("PLANNT_ROOT_KEYS's first key is current even when the file names another current key", () => {
    // ENV_OVERRIDES documents: "the first is current unless PLANNT_CURRENT_KEY_ID is set".
    const config = parseConfig(
      { ...minimal(), current_key_id: 1 },
      { PLANNT_ROOT_KEYS: `2:${HEX_B},1:${HEX_A}` },
    );
    expect(config.current_key_id).toBe(2);
  });

  it('a bad key in PLANNT_ROOT_KEYS is reported by its field', () => {
    expect(configError(minimal(), { PLANNT_ROOT_KEYS: `1:${HEX_A},2:abcd` })).toMatch(/root_keys\.1\.key/);
  });

  it('a PLANNT_ROOT_KEYS entry without an id is rejected, not read as key id 0', () => {
    const { root_keys: _k, current_key_id: _c, ...raw } = minimal();
    expect(() => parseConfig(raw, { PLANNT_ROOT_KEYS: `:${HEX_A}` })).toThrow(ConfigError);
  });

  it('PLANNT_REDIS_URL sets spent_set.redis.url', () => {
    const config = parseConfig(fullExample(), { PLANNT_REDIS_URL: 'redis://other:6379/1' });
    expect(config.spent_set.redis?.url).toBe('redis://other:6379/1');
    expect(config.spent_set.redis?.key_prefix).toBe('p:');
  });

  it('PLANNT_REDIS_PASSWORD sets the Sentinel password, so it never sits in the config file', () => {
    const raw = {
      ...minimal(),
      spent_set: { kind: 'redis', redis: { sentinels: [{ host: 's', port: 26379 }], master_name: 'm' } },
    };
    const config = parseConfig(raw, { PLANNT_REDIS_PASSWORD: 'pa55' });
    expect(config.spent_set.redis).toMatchObject({ master_name: 'm', password: 'pa55' });
  });

  it('PLANNT_SPENT_SET=redis with PLANNT_REDIS_URL turns a memory spent set into a redis one', () => {
    const config = parseConfig(minimal(), { PLANNT_SPENT_SET: 'redis', PLANNT_REDIS_URL: 'redis://r:6379' });
    expect(config.spent_set).toMatchObject({ kind: 'redis', redis: { url: 'redis://r:6379' } });
  });

  it('a PLANNT_REDIS_URL of another scheme is reported by its field', () => {
    const message = configError(minimal(), { PLANNT_SPENT_SET: 'redis', PLANNT_REDIS_URL: 'http://r:6379' });
    expect(message).toMatch(/spent_set\.redis\.url: expected redis:\/\/ or rediss:\/\//);
  });

  it('PLANNT_BACKEND and the PLANNT_LND_* variables build the lnd block', () => {
    const config = parseConfig(minimal(), {
      PLANNT_BACKEND: 'lnd',
      PLANNT_LND_SOCKET: 'lnd:10009',
      PLANNT_LND_CERT_BASE64: 'Y2VydA==',
      PLANNT_LND_MACAROON_BASE64: 'bWFj',
    });
    expect(config.backend).toEqual({
      kind: 'lnd',
      timeout_ms: 3000,
      lnd: { socket: 'lnd:10009', cert_base64: 'Y2VydA==', macaroon_base64: 'bWFj' },
    });
  });

  it('PLANNT_LOG_LEVEL sets log_level', () => {
    expect(parseConfig(minimal(), { PLANNT_LOG_LEVEL: 'warn' }).log_level).toBe('warn');
  });

  it('empty variables change nothing', () => {
    expect(parseConfig(minimal(), { PLANNT_ROOT_KEYS: '', PLANNT_REDIS_URL: '' })).toEqual(
      parseConfig(minimal()),
    );
  });
});

describe('errors never echo a value that might be a secret', () => {
  const secret = HEX_B;

  it('a YAML syntax error gives the line and column, not the line itself', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'plannt-config-')), 'bad.yaml');
    writeFileSync(file, `root_keys:\n  - id: 1\n    key: "${secret}" x\n`);
    let message = '';
    try {
      loadConfigFile(file, {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/not valid YAML at line 3, column \d+/);
    expect(message).not.toContain(secret.slice(0, 12));
  });

  it('an enumerated field names its options, not what it received', () => {
    const message = configError({ ...minimal(), log_level: secret });
    expect(message).toMatch(/log_level: expected one of 'fatal'/);
    expect(message).not.toContain(secret);
  });

  it('an unknown field is named only when it looks like a field name', () => {
    const message = configError({ ...minimal(), [secret]: 1, lisen: {} });
    expect(message).toMatch(/unknown field\(s\): 'lisen', 1 more not shown/);
    expect(message).not.toContain(secret);
  });
});

describe('listen addresses', () => {
  it.each([
    ['a port above 65535', { grpc: '127.0.0.1:99999' }, /listen\.grpc: port must be 0 to 65535/],
    [
      'two listeners on one port',
      { admin: '0.0.0.0:9100', http: '127.0.0.1:9100' },
      /listen\.http: uses the same port as listen\.admin/,
    ],
  ])('refuses %s', (_, listen, expected) => {
    expect(configError({ ...minimal(), listen })).toMatch(expected);
  });

  it('the same port on two specific hosts, or port 0 twice, is fine', () => {
    expect(() =>
      parseConfig({ ...minimal(), listen: { grpc: '127.0.0.1:9100', http: '127.0.0.2:9100' } }),
    ).not.toThrow();
    expect(() =>
      parseConfig({
        ...minimal(),
        listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0', admin: '127.0.0.1:0' },
      }),
    ).not.toThrow();
  });

  it('a YAML scalar with PLANNT_ROOT_KEYS is a config error at the root, not a crash', () => {
    expect(() => parseConfig('just a string', { PLANNT_ROOT_KEYS: `1:${HEX_A}` })).toThrow(
      /\(root\): expected a mapping/,
    );
  });
});

describe('workers', () => {
  const withRedis = (extra: Record<string, unknown> = {}) => ({
    ...minimal(),
    spent_set: { kind: 'redis', redis: { url: 'redis://redis:6379', ...extra } },
  });

  const lnd = { kind: 'lnd', lnd: { socket: 'lnd:10009', macaroon_file: '/lnd/invoice.macaroon' } };

  it('defaults to the CPUs allowed with the redis spent-set and lnd, and to 1 with the memory one or dev', () => {
    expect(defaultWorkers(parseConfig({ ...withRedis(), backend: lnd }), () => 4)).toBe(4);
    expect(defaultWorkers(parseConfig({ ...minimal(), backend: lnd }), () => 4)).toBe(1);
    expect(defaultWorkers(parseConfig(withRedis()), () => 4)).toBe(1);
  });

  it('defaults to 1 with local_fallback, whose outage window is once per process, and takes more when told', () => {
    const fallback = {
      ...withRedis(),
      backend: lnd,
      spent_set: { ...withRedis().spent_set, on_error: 'local_fallback' },
    };
    expect(defaultWorkers(parseConfig(fallback), () => 4)).toBe(1);
    expect(parseConfig({ ...fallback, workers: 4 }).workers).toBe(4);
  });

  it('refuses more than 1 with the dev backend, whose invoices /dev/pay finds only in the worker that made them', () => {
    expect(configError({ ...withRedis(), workers: 2 })).toMatch(/workers: more than 1 needs an lnd backend/);
    expect(parseConfig({ ...withRedis(), backend: lnd, workers: 2 }).workers).toBe(2);
  });

  it('refuses more than 1 with the memory spent-set, which each worker would keep apart', () => {
    expect(configError({ ...minimal(), backend: lnd, workers: 2 })).toMatch(
      /workers: more than 1 needs the redis spent-set/,
    );
    expect(parseConfig({ ...minimal(), workers: 1 }).workers).toBe(1);
  });

  it('keys spent tokens under p:s: unless told, and takes a legacy prefix equal to the prefix', () => {
    expect(parseConfig(withRedis()).spent_set.redis?.key_prefix).toBe('p:s:');
    // An upgrade that keeps its own prefix: the previous version's keys hold the whole hash, so they differ.
    const same = parseConfig(withRedis({ key_prefix: 'a:', legacy_key_prefix: 'a:' }));
    expect(same.spent_set.redis?.legacy_key_prefix).toBe('a:');
  });
});
