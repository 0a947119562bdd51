/**
 * Issue 10, F7: an allow whose answer leaves only after the caller's deadline reached no one (Envoy stopped
 * waiting and failed the request), so its use is given back and the agent's retry is served. The caller here
 * holds the answer back with HTTP/2 flow control: its stream window is 0 until the deadline has passed, so the
 * allow's message and trailers can only be written late.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { AuthorizationService } from '../../src/envoy/protos';
import { CHECK_PATH } from '../../src/server/grpc-server';
import { checkRequest } from '../support/envoy-client';
import { metricValue, type Plannt, sleep, startPlannt, waitFor } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=braga' };
// Long enough for the allow to be decided in time on a busy machine; it is then held past the deadline.
const DEADLINE_MS = 1000;
const method = AuthorizationService.Check;
if (!method) throw new Error('Check missing from the protos');
const serialize = method.requestSerialize as (request: object) => Buffer;

let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt();
});

afterAll(async () => {
  await plannt?.stop();
});

const undelivered = async () => metricValue(await plannt.metrics(), 'plannt_undelivered_allows_total');

test('an allow written after the deadline gives its use back: the same token is served on retry', async () => {
  const { authorization } = await plannt.buy(FORECAST);
  const session = http2.connect(`http://127.0.0.1:${plannt.app.grpcPort}`, {
    settings: { initialWindowSize: 0 },
  });
  await once(session, 'remoteSettings');
  try {
    const message = serialize(checkRequest({ ...FORECAST, headers: { authorization } }));
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(message.length, 1);
    const sent = Date.now();
    const stream = session.request({
      ':method': 'POST',
      ':path': CHECK_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${DEADLINE_MS}m`,
    });
    stream.on('error', () => {});
    const answered = once(stream, 'response');
    stream.end(Buffer.concat([prefix, message]));
    // The answer's headers come (they are not flow-controlled); its message waits for the window.
    await answered;
    await sleep(sent + DEADLINE_MS + 100 - Date.now());
    session.settings({ initialWindowSize: 65_535 });
    expect(await waitFor(async () => (await undelivered()) === 1, 10_000)).toBe(true);
  } finally {
    session.destroy();
  }
  const retry = await plannt.check({ ...FORECAST, headers: { authorization } });
  expect(retry.status).toBe(200);
  // That use was delivered: the token is spent now.
  expect((await plannt.check({ ...FORECAST, headers: { authorization } })).status).toBe(402);
  expect(await undelivered()).toBe(1);
});

test('an allow written in time keeps its use', async () => {
  const { authorization } = await plannt.buy(FORECAST);
  expect((await plannt.check({ ...FORECAST, headers: { authorization } })).status).toBe(200);
  expect((await plannt.check({ ...FORECAST, headers: { authorization } })).status).toBe(402);
  expect(await undelivered()).toBe(1);
});
