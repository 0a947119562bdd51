/**
 * The gRPC port's connection receive window (issue 10, F7). At Node's default of 64 KiB a caller can have
 * only ~90 checks' bytes unread: under load further requests wait unsent at the caller, their deadlines running
 * unseen, and an allow judged in time by this server reaches a caller that gave up, the token spent.
 */
import http2 from 'node:http2';
import { type Plannt, startPlannt } from '../support/plannt';

let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt();
});

afterAll(async () => {
  await plannt?.stop();
});

it('lets a caller send a second of checks before the server reads them', async () => {
  const port = plannt.app.grpcPort;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    // The server widens its window with a WINDOW_UPDATE right after its SETTINGS; a PING's answer follows both.
    await new Promise<void>((resolve, reject) => {
      session.once('error', reject);
      session.once('remoteSettings', () => session.ping((err) => (err ? reject(err) : resolve())));
    });
    expect(session.state.remoteWindowSize).toBeGreaterThanOrEqual(4 * 1024 * 1024);
  } finally {
    session.destroy();
  }
});
