import {
  CONTEXT_KEYS,
  type PricedRoute,
  type RequestTarget,
  type Resolution,
  type RouteRule,
  type RouteTable,
  resolveRoute,
  type UnmatchedPolicy,
} from '../../src/core/routes';

const DEFAULTS = { tokenLifetimeSeconds: 3600, invoiceExpirySeconds: 600 };

function rule(id: string, overrides: Partial<RouteRule> = {}): RouteRule {
  return {
    id,
    service: 'weather',
    priceSats: 10,
    tokenLifetimeSeconds: 7200,
    invoiceExpirySeconds: 300,
    path: { prefix: '/' },
    ...overrides,
  };
}

function table(rules: RouteRule[], unmatched: UnmatchedPolicy = { action: 'deny' }): RouteTable {
  return { rules, unmatched, defaults: DEFAULTS };
}

function target(overrides: Partial<RequestTarget> = {}): RequestTarget {
  return { host: 'api.example.com', path: '/', method: 'GET', contextExtensions: {}, ...overrides };
}

/** The id of the route a request resolves to, or the kind of non-route resolution. */
function routeIdOf(resolution: Resolution): string {
  if (resolution.kind === 'route') return resolution.route.id;
  return resolution.kind === 'unmatched' ? `unmatched:${resolution.action}` : 'invalid';
}

const resolve = (rules: RouteRule[], t: Partial<RequestTarget>, unmatched?: UnmatchedPolicy) =>
  routeIdOf(resolveRoute(table(rules, unmatched), target(t)));

describe('prefix paths', () => {
  const rules = [rule('v1', { path: { prefix: '/v1/' } })];

  it('matches the prefix itself and anything below it', () => {
    expect(resolve(rules, { path: '/v1/' })).toBe('v1');
    expect(resolve(rules, { path: '/v1/forecast/today' })).toBe('v1');
  });

  it('does not match other paths', () => {
    expect(resolve(rules, { path: '/v1' })).toBe('unmatched:deny');
    expect(resolve(rules, { path: '/v2/forecast' })).toBe('unmatched:deny');
  });

  it('is case-sensitive', () => {
    expect(resolve(rules, { path: '/V1/forecast' })).toBe('unmatched:deny');
  });
});

describe('exact paths', () => {
  const rules = [rule('health', { path: { exact: '/health' } })];

  it('matches only the exact path', () => {
    expect(resolve(rules, { path: '/health' })).toBe('health');
    expect(resolve(rules, { path: '/health/' })).toBe('unmatched:deny');
    expect(resolve(rules, { path: '/healthz' })).toBe('unmatched:deny');
  });
});

describe('regex paths', () => {
  const rules = [rule('item', { path: { regex: /^\/v1\/items\/\d+$/ } })];

  it('matches paths the regex accepts', () => {
    expect(resolve(rules, { path: '/v1/items/42' })).toBe('item');
  });

  it('does not match paths the regex refuses', () => {
    expect(resolve(rules, { path: '/v1/items/abc' })).toBe('unmatched:deny');
    expect(resolve(rules, { path: '/v1/items/42/extra' })).toBe('unmatched:deny');
  });
});

describe('methods', () => {
  const rules = [rule('write', { methods: ['POST', 'PUT'] }), rule('any', { path: { prefix: '/' } })];

  it('matches a listed method', () => {
    expect(resolve(rules, { method: 'POST' })).toBe('write');
    expect(resolve(rules, { method: 'PUT' })).toBe('write');
  });

  it('skips the rule for another method', () => {
    expect(resolve(rules, { method: 'GET' })).toBe('any');
  });

  it('matches any method when none are listed', () => {
    expect(resolve([rule('any')], { method: 'DELETE' })).toBe('any');
  });
});

describe('hosts', () => {
  it('matches an exact host', () => {
    const rules = [rule('api', { host: 'api.example.com' })];
    expect(resolve(rules, { host: 'api.example.com' })).toBe('api');
    expect(resolve(rules, { host: 'www.example.com' })).toBe('unmatched:deny');
    expect(resolve(rules, { host: 'evil-api.example.com' })).toBe('unmatched:deny');
  });

  it('strips the port before matching', () => {
    const rules = [rule('api', { host: 'api.example.com' })];
    expect(resolve(rules, { host: 'api.example.com:8443' })).toBe('api');
  });

  it('compares the request host case-insensitively', () => {
    const rules = [rule('api', { host: 'api.example.com' })];
    expect(resolve(rules, { host: 'API.Example.COM' })).toBe('api');
  });

  it('matches *.suffix against subdomains', () => {
    const rules = [rule('wild', { host: '*.example.com' })];
    expect(resolve(rules, { host: 'api.example.com' })).toBe('wild');
    expect(resolve(rules, { host: 'a.b.example.com:80' })).toBe('wild');
  });

  it('does not match *.suffix against the bare domain or look-alike domains', () => {
    const rules = [rule('wild', { host: '*.example.com' })];
    expect(resolve(rules, { host: 'example.com' })).toBe('unmatched:deny');
    expect(resolve(rules, { host: 'badexample.com' })).toBe('unmatched:deny');
    expect(resolve(rules, { host: 'api.example.com.evil.net' })).toBe('unmatched:deny');
  });

  it('matches any host when none is set', () => {
    expect(resolve([rule('any')], { host: 'whatever.test:1' })).toBe('any');
  });
});

describe('rule order', () => {
  it('the first matching rule wins', () => {
    const rules = [
      rule('specific', { path: { prefix: '/v1/forecast' }, priceSats: 100 }),
      rule('general', { path: { prefix: '/v1/' }, priceSats: 1 }),
    ];
    expect(resolve(rules, { path: '/v1/forecast/today' })).toBe('specific');
    expect(resolve(rules, { path: '/v1/history' })).toBe('general');
  });

  it('a broad rule listed first shadows later ones', () => {
    const rules = [rule('general', { path: { prefix: '/' } }), rule('specific', { path: { exact: '/x' } })];
    expect(resolve(rules, { path: '/x' })).toBe('general');
  });

  it('returns the matched rule as the priced route', () => {
    const matched = rule('r', { capability: 'read' });
    const resolution = resolveRoute(table([matched]), target());
    expect(resolution).toEqual({ kind: 'route', route: matched });
  });
});

describe('context_extensions override the table', () => {
  const base = rule('forecast', { priceSats: 10, capability: 'read' });
  const withExt = (ext: Record<string, string>, rules: RouteRule[] = [base], unmatched?: UnmatchedPolicy) =>
    resolveRoute(table(rules, unmatched), target({ contextExtensions: ext }));

  it('uses the context keys plannt.price_sats, plannt.service, plannt.route and plannt.mode', () => {
    expect(CONTEXT_KEYS).toEqual({
      price: 'plannt.price_sats',
      service: 'plannt.service',
      route: 'plannt.route',
      uses: 'plannt.uses',
      maxRequestsPerSecond: 'plannt.max_requests_per_second',
      mode: 'plannt.mode',
    });
  });

  it('sells bundles and passes through plannt.uses and plannt.max_requests_per_second', () => {
    expect(withExt({ 'plannt.uses': '10' })).toMatchObject({ kind: 'route', route: { uses: 10 } });
    expect(withExt({ 'plannt.uses': 'unlimited', 'plannt.max_requests_per_second': '5' })).toMatchObject({
      kind: 'route',
      route: { uses: 'unlimited', maxRequestsPerSecond: 5 },
    });
    for (const bad of ['0', '-1', '1.5', 'many', '']) {
      expect(withExt({ 'plannt.uses': bad })).toMatchObject({ kind: 'invalid' });
    }
    expect(withExt({ 'plannt.max_requests_per_second': '0' })).toMatchObject({ kind: 'invalid' });
  });

  it('overrides the price of a matched rule, keeping its other terms', () => {
    expect(withExt({ 'plannt.price_sats': '250' })).toEqual({
      kind: 'route',
      route: {
        id: 'forecast',
        service: 'weather',
        priceSats: 250,
        tokenLifetimeSeconds: 7200,
        invoiceExpirySeconds: 300,
        capability: 'read',
      },
    });
  });

  it('overrides the service and route id', () => {
    const resolution = withExt({ 'plannt.service': 'maps', 'plannt.route': 'tiles/v2' });
    expect(resolution).toMatchObject({
      kind: 'route',
      route: { id: 'tiles/v2', service: 'maps', priceSats: 10 },
    });
  });

  it('a zero price override makes the route free', () => {
    expect(withExt({ 'plannt.price_sats': '0' })).toMatchObject({ kind: 'route', route: { priceSats: 0 } });
  });

  it('prices an unmatched request on its own, with the table defaults', () => {
    expect(withExt({ 'plannt.service': 'maps', 'plannt.price_sats': '5' }, [])).toEqual({
      kind: 'route',
      route: { id: 'maps', service: 'maps', priceSats: 5, ...DEFAULTS },
    });
  });

  it('is invalid for an unmatched request without both service and price', () => {
    expect(withExt({ 'plannt.service': 'maps' }, []).kind).toBe('invalid');
    expect(withExt({ 'plannt.price_sats': '5' }, []).kind).toBe('invalid');
    expect(withExt({ 'plannt.route': 'x' }, []).kind).toBe('invalid');
  });

  it.each([
    ['a negative price', { 'plannt.price_sats': '-1' }],
    ['a fractional price', { 'plannt.price_sats': '1.5' }],
    ['a non-numeric price', { 'plannt.price_sats': 'ten' }],
    ['an empty price', { 'plannt.price_sats': '' }],
    ['a 13-digit price', { 'plannt.price_sats': '1234567890123' }],
    ['an upper-case service', { 'plannt.service': 'Weather' }],
    ['a service with an underscore', { 'plannt.service': 'weather_api' }],
    ['an empty service', { 'plannt.service': '' }],
    ['a 64-character service', { 'plannt.service': 'a'.repeat(64) }],
    ['a route id with a space', { 'plannt.route': 'a b' }],
    ['a route id with a comma', { 'plannt.route': 'a,b' }],
    ['a route id starting with a dash', { 'plannt.route': '-a' }],
    ['an empty route id', { 'plannt.route': '' }],
  ])('is invalid for %s', (_, ext) => {
    const resolution = withExt(ext);
    expect(resolution.kind).toBe('invalid');
    expect(resolution.kind === 'invalid' && resolution.detail).toMatch(/plannt\./);
  });

  it('validates extensions even when the unmatched policy would allow the request', () => {
    expect(withExt({ 'plannt.price_sats': 'x' }, [], { action: 'allow' }).kind).toBe('invalid');
  });
});

describe('unmatched requests', () => {
  const rules = [rule('v1', { path: { prefix: '/v1/' } })];
  const priced: PricedRoute = {
    id: 'fallback',
    service: 'weather',
    priceSats: 1,
    tokenLifetimeSeconds: 3600,
    invoiceExpirySeconds: 600,
  };

  it('deny policy: resolves to unmatched deny', () => {
    expect(resolveRoute(table(rules, { action: 'deny' }), target({ path: '/other' }))).toEqual({
      kind: 'unmatched',
      action: 'deny',
    });
  });

  it('allow policy: resolves to unmatched allow', () => {
    expect(resolveRoute(table(rules, { action: 'allow' }), target({ path: '/other' }))).toEqual({
      kind: 'unmatched',
      action: 'allow',
    });
  });

  it('price policy: resolves to the fallback priced route', () => {
    expect(
      resolveRoute(table(rules, { action: 'price', route: priced }), target({ path: '/other' })),
    ).toEqual({ kind: 'route', route: priced });
  });

  it('price policy: a matching rule still wins over the fallback', () => {
    expect(resolve(rules, { path: '/v1/x' }, { action: 'price', route: priced })).toBe('v1');
  });

  it('price policy: context extensions override the fallback route', () => {
    const resolution = resolveRoute(
      table(rules, { action: 'price', route: priced }),
      target({ path: '/other', contextExtensions: { 'plannt.price_sats': '7' } }),
    );
    expect(resolution).toMatchObject({ kind: 'route', route: { id: 'fallback', priceSats: 7 } });
  });
});
