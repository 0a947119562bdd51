/**
 * `npm run regtest:up` / `regtest:down`: a regtest Lightning network that stays up between commands, in
 * PLANNT_REGTEST_DIR (default .tmp/regtest in the repository). `up` is idempotent: a running network is
 * reused, a stale one (daemons gone) is torn down and started again.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { MissingToolchain, REPO_ROOT } from './daemons';
import { isNetworkUp, loadNetwork, networkFile, startNetwork, stopNetworkIn } from './network';

const dir = process.env.PLANNT_REGTEST_DIR ?? path.join(REPO_ROOT, '.tmp', 'regtest');
const say = (line: string) => console.log(`regtest: ${line}`);

async function up(): Promise<void> {
  const existing = loadNetwork(dir);
  if (existing && (await isNetworkUp(existing))) {
    say(`already up (${networkFile(dir)})`);
    return;
  }
  if (await stopNetworkIn(dir)) say('stopped a stale or half-started network first');
  rmSync(dir, { recursive: true, force: true });
  const started = Date.now();
  const net = await startNetwork({ dir, log: say });
  say(`up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  say(`alice (service) lnd: ${net.alice.socket}  cert ${net.alice.certPath}`);
  say(`  invoice-only macaroon: ${net.alice.invoiceMacaroonPath}`);
  say(`bob (agent) lnd: ${net.bob.socket}  admin macaroon ${net.bob.adminMacaroonPath}`);
  say(`stop it with: npm run regtest:down`);
}

async function down(): Promise<void> {
  if (await stopNetworkIn(dir)) say(`stopped btcd, alice and bob; removed ${dir}`);
  else say(`nothing to stop in ${dir}`);
}

const command = process.argv[2];
const action = command === 'up' ? up : command === 'down' ? down : undefined;
if (!action) {
  console.error('usage: regtest up|down');
  process.exit(64);
}
action().catch((err: unknown) => {
  console.error(err instanceof MissingToolchain ? `regtest: ${err.message}` : err);
  process.exit(1);
});
