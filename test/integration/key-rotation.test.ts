/**
 * Root key rotation without downtime, as README describes it, with replicas on different steps of the rollout
 * at the same time (what a rolling update looks like) sharing a Redis spent-set:
 *   1. keys [1], current 1  →  2. keys [1, 2], current 1  →  3. keys [1, 2], current 2  →  4. keys [2], current 2
 * At every step, every token a replica of the current or the previous step minted is accepted by both.
 */
import { randomBytes } from 'node:crypto';
import { inspectToken } from '../../src/l402/inspect';
import {
  deleteRedisKeys,
  type Plannt,
  type Purchase,
  REDIS_URL,
  startPlannt,
  uniqueRedisPrefix,
} from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=beja' };
const OLD = { id: 1, key: randomBytes(32).toString('hex') };
const NEW = { id: 2, key: randomBytes(48).toString('hex') };
const prefix = uniqueRedisPrefix();

const replicas: Plannt[] = [];

async function replica(keys: (typeof OLD)[], current: number): Promise<Plannt> {
  const p = await startPlannt({
    root_keys: keys,
    current_key_id: current,
    spent_set: { kind: 'redis', redis: { url: REDIS_URL, key_prefix: prefix } },
  });
  replicas.push(p);
  return p;
}

const keyIdOf = (purchase: Purchase) => inspectToken(purchase.macaroon).key_id;

async function use(p: Plannt, purchase: Purchase): Promise<string> {
  const res = await p.check({ ...FORECAST, headers: { authorization: purchase.authorization } });
  return res.allowed ? 'allow' : `${res.status} ${res.body.error}`;
}

afterAll(async () => {
  for (const p of replicas) await p.stop();
  await deleteRedisKeys(prefix);
});

describe('root key rotation', () => {
  let step1: Plannt;
  let step2: Plannt;
  let step3: Plannt;
  let step4: Plannt;
  let oldToken: Purchase;
  let oldTokenForLater: Purchase;

  beforeAll(async () => {
    [step1, step2, step3, step4] = await Promise.all([
      replica([OLD], 1),
      replica([OLD, NEW], 1),
      replica([OLD, NEW], 2),
      replica([NEW], 2),
    ]);
    oldToken = await step1.buy(FORECAST);
    oldTokenForLater = await step1.buy(FORECAST);
  });

  it('step 2 (new key added, not current) still mints with the old key and accepts old tokens', async () => {
    const minted = await step2.buy(FORECAST);
    expect(keyIdOf(minted)).toBe(1);
    expect(await use(step1, minted)).toBe('allow'); // a replica not yet updated accepts it
    expect(await use(step2, oldToken)).toBe('allow');
  });

  it('step 3 (new key current) mints with the new key; step-2 replicas accept those, and old tokens still work', async () => {
    const minted = await step3.buy(FORECAST);
    expect(keyIdOf(minted)).toBe(2);
    expect(await use(step2, minted)).toBe('allow');
    const another = await step3.buy(FORECAST);
    expect(await use(step3, another)).toBe('allow');
    expect(await use(step3, oldTokenForLater)).toBe('allow');
  });

  it('skipping step 2 would break: a replica that only knows the old key refuses new tokens as unknown_key', async () => {
    const minted = await step3.buy(FORECAST);
    expect(await use(step1, minted)).toBe('402 unknown_key');
    // Nothing was spent by the refusal: the token still works where the key is known.
    expect(await use(step2, minted)).toBe('allow');
  });

  it('step 4 (old key removed) refuses tokens of the old key and accepts the new', async () => {
    const old = await step1.buy(FORECAST);
    expect(await use(step4, old)).toBe('402 unknown_key');
    const minted = await step4.buy(FORECAST);
    expect(keyIdOf(minted)).toBe(2);
    expect(await use(step4, minted)).toBe('allow');
  });

  it('spends are shared across the rollout: a token used on one step is spent on every other', async () => {
    const minted = await step3.buy(FORECAST);
    expect(await use(step2, minted)).toBe('allow');
    expect(await use(step3, minted)).toBe('402 token_spent');
    expect(await use(step4, minted)).toBe('402 token_spent');
  });
});
