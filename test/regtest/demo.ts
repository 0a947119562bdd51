/**
 * `npm run demo`: real Lightning, end to end. Brings a regtest network up (btcd, alice = the service's
 * lnd, bob = the agent's lnd, a bob → alice channel), starts Plannt with the lnd backend and the Redis
 * spent-set, and narrates an agent buying one API request: each exchange as Envoy relays it, the payment,
 * the replay, and the Prometheus counters that moved. Everything it started is stopped at the end.
 */
import { randomBytes } from 'node:crypto';
import { type AuthenticatedLnd, authenticatedLndGrpc } from 'ln-service';
import { type App, startApp } from '../../src/app';
import { parseConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { authorizationClient, type CheckInput, type CheckResult, check } from '../support/envoy-client';
import { l402Authorization, payInvoice, readChallenge } from '../support/l402-agent';
import { deleteRedisKeys } from '../support/plannt';
import { MissingToolchain } from './daemons';
import { lndCredentials, type RegtestNetwork, startNetwork, stopNetwork } from './network';

const REDIS_URL = process.env.PLANNT_REDIS_URL ?? 'redis://127.0.0.1:6379';
const REQUEST: CheckInput = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=lisbon' };

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const short = (s: string, n = 48) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
const step = (n: number, title: string) => console.log(`\n${bold(`${n}. ${title}`)}`);

function showRequest(authorization?: string): void {
  console.log(`   → ${REQUEST.method} https://${REQUEST.host}${REQUEST.path}`);
  if (authorization) console.log(`     Authorization: ${short(authorization, 72)}`);
}

function showAnswer(res: CheckResult): void {
  if (res.allowed) {
    console.log('   ← 200 OK: Envoy forwards the request upstream with');
    for (const [k, v] of Object.entries(res.upstreamHeaders)) console.log(`       ${k}: ${v}`);
    return;
  }
  console.log(`   ← ${res.status} ${String(res.body.error)}: ${String(res.body.message ?? '')}`);
  for (const value of res.header('www-authenticate'))
    console.log(`     WWW-Authenticate: ${short(value, 90)}`);
}

async function counters(app: App): Promise<Map<string, number>> {
  const text = await app.metrics.registry.metrics();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(plannt_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m?.[1] && m[2] && !m[1].includes('_bucket') && !m[1].includes('dependency_ready'))
      out.set(m[1], Number(m[2]));
  }
  return out;
}

async function narrate(net: RegtestNetwork, app: App, bob: AuthenticatedLnd): Promise<void> {
  const client = authorizationClient(app.grpcPort);
  try {
    const before = await counters(app);
    console.log(bold('\nAn agent with no account and no API key buys one request.'));
    console.log(
      dim(
        '(Each request is the CheckRequest Envoy sends Plannt; each answer is what Envoy answers the agent.)',
      ),
    );

    step(1, 'The agent asks for the resource');
    showRequest();
    const challenged = await check(client, REQUEST);
    showAnswer(challenged);

    step(2, 'It reads the challenge: a macaroon bound to a Lightning invoice');
    const c = readChallenge(challenged.header('www-authenticate')[0] ?? '');
    console.log(
      `   invoice: ${c.invoice.satoshi} sats, "${c.invoice.description}", expires ${c.invoice.expiryDate?.toISOString()}`,
    );
    console.log(`   payment hash: ${c.invoice.paymentHash}`);
    console.log(`   macaroon caveats: ${c.token.caveats.join(', ')}`);

    step(3, "It pays the invoice from bob's node, over the bob → alice channel");
    const payment = await payInvoice(bob, c.invoice);
    console.log(
      `   paid ${c.invoice.satoshi} sats in ${payment.ms.toFixed(0)} ms, routing fee ${payment.feeSats} sats`,
    );
    console.log(`   preimage: ${payment.preimage}  (sha256 = the payment hash: proof of payment)`);

    step(4, 'It retries with the macaroon and the preimage');
    const authorization = l402Authorization(c.macaroon, payment.preimage);
    showRequest(authorization);
    const served = await check(client, { ...REQUEST, headers: { authorization } });

    step(5, 'Plannt verifies the token (signature, caveats, sha256(preimage), single use) and allows');
    showAnswer(served);

    console.log(`\n${bold('Then the same token again: a replay is refused, on any replica (Redis)')}`);
    showRequest(authorization);
    showAnswer(await check(client, { ...REQUEST, headers: { authorization } }));

    // The settlement stream reports the payment asynchronously; give it a moment.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await counters(app);
    console.log(bold('\nPrometheus counters that moved (GET /metrics):'));
    for (const [name, value] of after) {
      const delta = value - (before.get(name) ?? 0);
      if (delta !== 0) console.log(`   ${name} ${value}`);
    }
    console.log(
      dim(`\nalice's node: ${net.alice.socket}; Plannt held only an invoices:read/write macaroon.`),
    );
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  // ln-service connects TLS to 127.0.0.1 with the IP as server name; Node's deprecation notice is noise here.
  process.noDeprecation = true;
  const started = Date.now();
  console.log(bold('Bringing up a regtest Lightning network (btcd, alice, bob)…'));
  const net = await startNetwork({ log: (line) => console.log(dim(`   regtest: ${line}`)) });
  console.log(`   up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const prefix = `plannt-demo:${randomBytes(6).toString('hex')}:`;
  let app: App | undefined;
  let bob: AuthenticatedLnd | undefined;
  try {
    app = await startApp(
      parseConfig(
        {
          listen: { grpc: '127.0.0.1:0', admin: '127.0.0.1:0', http: '127.0.0.1:0' },
          location: 'plannt-demo',
          drain_seconds: 0,
          root_keys: [{ id: 1, key: randomBytes(32).toString('hex') }],
          current_key_id: 1,
          backend: {
            kind: 'lnd',
            lnd: {
              socket: net.alice.socket,
              cert_file: net.alice.certPath,
              macaroon_file: net.alice.invoiceMacaroonPath,
            },
          },
          spent_set: { kind: 'redis', redis: { url: REDIS_URL, key_prefix: prefix } },
          routes: [{ id: 'forecast', service: 'weather', price_sats: 10, path: { prefix: '/v1/forecast' } }],
          log_level: 'warn',
        },
        {},
      ),
      { env: { NODE_ENV: 'production' }, logger: createLogger('warn') },
    );
    if (Object.values(app.readiness.status()).includes(false)) {
      throw new Error(
        `Plannt is not ready: ${JSON.stringify(app.readiness.status())} (is Redis up at ${REDIS_URL}?)`,
      );
    }
    console.log(`Plannt: ext_authz gRPC on 127.0.0.1:${app.grpcPort}, lnd backend (alice), Redis spent-set`);
    bob = authenticatedLndGrpc(lndCredentials(net.bob)).lnd;
    await narrate(net, app, bob);
  } finally {
    for (const c of Object.values(bob ?? {})) (c as { close?: () => void }).close?.();
    await app?.stop();
    await deleteRedisKeys(prefix, REDIS_URL).catch(() => {});
    await stopNetwork(net);
    console.log(dim('\nStopped Plannt, alice, bob and btcd; removed the regtest data.'));
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof MissingToolchain ? `demo: ${err.message}` : err);
  process.exit(1);
});
