/**
 * A two-node Lightning network on regtest, all on loopback and in one directory: btcd, `alice` (the
 * service's node; Plannt gets an invoice-only macaroon for it) and `bob` (the agent's node), with a funded
 * bob → alice channel. `<dir>/network.json` describes it for the tests, the demo and the bench.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type Daemon,
  isRunning,
  run,
  spawnDaemon,
  stopDaemon,
  type Tool,
  toolPaths,
  waitUntil,
} from './daemons';

export type NodeName = 'alice' | 'bob';

export interface LndNode extends Daemon {
  name: NodeName;
  lnddir: string;
  rpcPort: number;
  p2pPort: number;
  /** `127.0.0.1:<rpc port>`, as ln-service and Plannt's `backend.lnd.socket` take it. */
  socket: string;
  pubkey: string;
  certPath: string;
  adminMacaroonPath: string;
}

export interface Btcd extends Daemon {
  rpcPort: number;
  user: string;
  pass: string;
  certPath: string;
  /** Where `generate` sends the coinbase: bob's wallet. */
  miningAddress: string;
}

export interface RegtestNetwork {
  dir: string;
  bin: Record<Tool, string>;
  btcd: Btcd;
  /** The service's node; `invoiceMacaroonPath` holds `invoices:read invoices:write` only. */
  alice: LndNode & { invoiceMacaroonPath: string };
  /** The agent's node: it has the funds and the channel's whole balance. */
  bob: LndNode;
  channel: { capacitySats: number; channelPoint: string };
}

export interface StartOptions {
  /** Where the data, logs and network.json go; a fresh temp dir by default. */
  dir?: string;
  /** The whole start-up fails after this long (default 180 s, or PLANNT_REGTEST_TIMEOUT_S). */
  timeoutMs?: number;
  channelSats?: number;
  log?: (line: string) => void;
}

const CHANNEL_SATS = 5_000_000;

/** Starts btcd, alice and bob, funds bob, opens and activates the channel; tears down on failure. */
export async function startNetwork(options: StartOptions = {}): Promise<RegtestNetwork> {
  const bin = toolPaths();
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? Number(process.env.PLANNT_REGTEST_TIMEOUT_S ?? 180) * 1000;
  const until = Date.now() + timeoutMs;
  const left = () => Math.max(1000, until - Date.now());
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'plannt-regtest-'));
  mkdirSync(dir, { recursive: true });
  const started: Daemon[] = [];
  // Written at every spawn, so `regtest:down` can stop what an interrupted start left running.
  const track = (d: Daemon) => {
    if (!started.includes(d)) started.push(d);
    recordDaemons(dir, started);
  };

  try {
    const btcdDir = path.join(dir, 'btcd');
    mkdirSync(btcdDir, { recursive: true });
    const btcd: Btcd = {
      name: 'btcd',
      pid: 0,
      bin: bin.btcd,
      log: path.join(btcdDir, 'btcd.log'),
      rpcPort: await freePort(),
      user: 'plannt',
      pass: randomBytes(12).toString('hex'),
      certPath: path.join(btcdDir, 'rpc.cert'),
      miningAddress: '',
    };
    const chain = { bin, btcd };

    log(`starting btcd (regtest) on 127.0.0.1:${btcd.rpcPort}, data in ${btcdDir}`);
    Object.assign(btcd, spawnDaemon('btcd', bin.btcd, btcdArgs(btcd), btcd.log));
    track(btcd);
    await waitUntil('btcd RPC', async () => /^\d+/.test(await btcctl(chain, 'getblockcount')), left(), btcd);

    log('starting lnd nodes alice (service) and bob (agent)');
    const alice = {
      ...(await newNode(dir, bin, 'alice')),
      invoiceMacaroonPath: path.join(dir, 'alice', 'invoice.macaroon'),
    };
    const bob = await newNode(dir, bin, 'bob');
    const net: RegtestNetwork = {
      dir,
      bin,
      btcd,
      alice,
      bob,
      channel: { capacitySats: 0, channelPoint: '' },
    };
    for (const node of [alice, bob]) {
      Object.assign(node, spawnDaemon(node.name, bin.lnd, lndArgs(btcd, node), node.log));
      track(node);
    }
    await Promise.all([waitForNode(net, 'alice', left()), waitForNode(net, 'bob', left())]);

    // btcd has no generatetoaddress: it mines to --miningaddr, so it restarts with bob's address.
    btcd.miningAddress = (
      JSON.parse(await lncli(net, 'bob', 'newaddress', 'p2wkh')) as { address: string }
    ).address;
    log(`restarting btcd to mine to bob's address ${btcd.miningAddress}`);
    await stopDaemon(btcd);
    Object.assign(btcd, spawnDaemon('btcd', bin.btcd, btcdArgs(btcd), btcd.log));
    track(btcd);
    await waitUntil(
      'btcd RPC after restart',
      async () => /^\d+/.test(await btcctl(net, 'getblockcount')),
      left(),
      btcd,
    );

    // 100 blocks for the first coinbase to mature, plus some to spend.
    log('mining 120 blocks to fund bob');
    await mine(net, 120);
    await waitUntil(
      "bob's funds to confirm",
      async () => Number(JSON.parse(await lncli(net, 'bob', 'walletbalance')).confirmed_balance) > 0,
      left(),
      net.bob,
    );
    await Promise.all([waitForSync(net, 'alice', left()), waitForSync(net, 'bob', left())]);

    const capacitySats = options.channelSats ?? CHANNEL_SATS;
    log(`opening a ${capacitySats} sat channel bob → alice`);
    await connectPeers(net);
    const opened = JSON.parse(
      await lncli(
        net,
        'bob',
        'openchannel',
        `--node_key=${net.alice.pubkey}`,
        `--local_amt=${capacitySats}`,
        '--sat_per_vbyte=2',
      ),
    ) as { funding_txid: string; output_index?: number };
    net.channel = { capacitySats, channelPoint: `${opened.funding_txid}:${opened.output_index ?? 0}` };
    await waitUntil(
      'the funding transaction in the mempool',
      async () => (JSON.parse(await btcctl(net, 'getrawmempool')) as string[]).includes(opened.funding_txid),
      left(),
      net.bob,
    );
    await mine(net, 3);
    await waitForChannel(net, left());

    log('baking an invoice-only macaroon for alice (invoices:read invoices:write)');
    await lncli(
      net,
      'alice',
      'bakemacaroon',
      '--save_to',
      net.alice.invoiceMacaroonPath,
      'invoices:read',
      'invoices:write',
    );
    saveNetwork(net);
    log(`network up: ${path.join(dir, 'network.json')}`);
    return net;
  } catch (err) {
    await Promise.allSettled(started.map((d) => stopDaemon(d, 'SIGKILL')));
    throw err;
  }
}

/** Stops every daemon of the network (by PID) and, unless keepDir, deletes its directory. */
export async function stopNetwork(net: RegtestNetwork, { keepDir = false } = {}): Promise<void> {
  await Promise.allSettled([stopDaemon(net.alice), stopDaemon(net.bob)]);
  await stopDaemon(net.btcd);
  if (!keepDir) rmSync(net.dir, { recursive: true, force: true });
}

/**
 * Stops whatever a network in `dir` started, from its daemons file (so also after an interrupted start),
 * and deletes the directory. False when there was nothing to stop.
 */
export async function stopNetworkIn(dir: string): Promise<boolean> {
  const file = daemonsFile(dir);
  if (!existsSync(file)) return false;
  const daemons = JSON.parse(readFileSync(file, 'utf8')) as Daemon[];
  const lnds = daemons.filter((d) => d.name !== 'btcd');
  await Promise.allSettled(lnds.map((d) => stopDaemon(d)));
  await Promise.allSettled(daemons.filter((d) => !lnds.includes(d)).map((d) => stopDaemon(d)));
  rmSync(dir, { recursive: true, force: true });
  return true;
}

function daemonsFile(dir: string): string {
  return path.join(dir, 'daemons.json');
}

function recordDaemons(dir: string, daemons: readonly Daemon[]): void {
  const rows = daemons.map(({ name, pid, bin, log }) => ({ name, pid, bin, log }));
  writeFileSync(daemonsFile(dir), `${JSON.stringify(rows, null, 2)}\n`);
}

export function networkFile(dir: string): string {
  return path.join(dir, 'network.json');
}

export function saveNetwork(net: RegtestNetwork): void {
  writeFileSync(networkFile(net.dir), `${JSON.stringify(net, null, 2)}\n`);
}

export function loadNetwork(dir: string): RegtestNetwork | undefined {
  const file = networkFile(dir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RegtestNetwork) : undefined;
}

/** True when every daemon still runs and alice answers. */
export async function isNetworkUp(net: RegtestNetwork): Promise<boolean> {
  const running = [net.btcd, net.alice, net.bob].every((d) => isRunning(d.pid, d.bin));
  return (
    running &&
    (await lncli(net, 'alice', 'getinfo').then(
      () => true,
      () => false,
    ))
  );
}

/** What ln-service's authenticatedLndGrpc takes: socket, base64 TLS cert, base64 macaroon. */
export function lndCredentials(
  node: LndNode,
  macaroonPath = node.adminMacaroonPath,
): { socket: string; cert: string; macaroon: string } {
  return {
    socket: node.socket,
    cert: readFileSync(node.certPath).toString('base64'),
    macaroon: readFileSync(macaroonPath).toString('base64'),
  };
}

export function lncli(net: RegtestNetwork, name: NodeName, ...args: string[]): Promise<string> {
  const node = net[name];
  return run(net.bin.lncli, [
    `--lnddir=${node.lnddir}`,
    '--network=regtest',
    `--rpcserver=${node.socket}`,
    ...args,
  ]);
}

export function btcctl(net: Pick<RegtestNetwork, 'bin' | 'btcd'>, ...args: string[]): Promise<string> {
  const { btcd } = net;
  return run(net.bin.btcctl, [
    '--regtest',
    `--rpcserver=127.0.0.1:${btcd.rpcPort}`,
    `--rpcuser=${btcd.user}`,
    `--rpcpass=${btcd.pass}`,
    `--rpccert=${btcd.certPath}`,
    ...args,
  ]);
}

export async function mine(net: RegtestNetwork, blocks: number): Promise<void> {
  await btcctl(net, 'generate', String(blocks));
}

/** Kills one node (SIGKILL by default: a crash, not a shutdown). */
export async function stopNode(
  net: RegtestNetwork,
  name: NodeName,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  await stopDaemon(net[name], signal);
}

/** Starts a stopped node again with its data and ports, and waits until the channel is active again. */
export async function restartNode(net: RegtestNetwork, name: NodeName, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const left = () => Math.max(1000, until - Date.now());
  const node = net[name];
  Object.assign(node, spawnDaemon(name, net.bin.lnd, lndArgs(net.btcd, node), node.log));
  recordDaemons(net.dir, [net.btcd, net.alice, net.bob]);
  saveNetwork(net);
  await waitForNode(net, name, left());
  await waitForSync(net, name, left());
  // Both sides reconnect to a channel peer on their own, with a backoff; a connect makes it prompt.
  await connectPeers(net).catch(() => {});
  await waitForChannel(net, left());
}

function btcdArgs(btcd: Btcd): string[] {
  const home = path.dirname(btcd.log);
  return [
    '--regtest',
    `--configfile=${path.join(home, 'btcd.conf')}`,
    `--datadir=${path.join(home, 'data')}`,
    `--logdir=${path.join(home, 'logs')}`,
    `--rpclisten=127.0.0.1:${btcd.rpcPort}`,
    `--rpcuser=${btcd.user}`,
    `--rpcpass=${btcd.pass}`,
    `--rpccert=${btcd.certPath}`,
    `--rpckey=${path.join(home, 'rpc.key')}`,
    '--nolisten',
    '--txindex',
    ...(btcd.miningAddress ? [`--miningaddr=${btcd.miningAddress}`] : []),
  ];
}

async function newNode(dir: string, bin: Record<Tool, string>, name: NodeName): Promise<LndNode> {
  const lnddir = path.join(dir, name);
  mkdirSync(lnddir, { recursive: true });
  const rpcPort = await freePort();
  return {
    name,
    pid: 0,
    bin: bin.lnd,
    log: path.join(lnddir, 'lnd.log'),
    lnddir,
    rpcPort,
    p2pPort: await freePort(),
    socket: `127.0.0.1:${rpcPort}`,
    pubkey: '',
    certPath: path.join(lnddir, 'tls.cert'),
    adminMacaroonPath: path.join(lnddir, 'data', 'chain', 'bitcoin', 'regtest', 'admin.macaroon'),
  };
}

function lndArgs(btcd: Btcd, node: LndNode): string[] {
  return [
    `--lnddir=${node.lnddir}`,
    `--alias=${node.name}`,
    '--bitcoin.regtest',
    '--bitcoin.node=btcd',
    `--btcd.rpchost=127.0.0.1:${btcd.rpcPort}`,
    `--btcd.rpcuser=${btcd.user}`,
    `--btcd.rpcpass=${btcd.pass}`,
    `--btcd.rpccert=${btcd.certPath}`,
    // No wallet password or seed to handle: test funds only.
    '--noseedbackup',
    `--rpclisten=127.0.0.1:${node.rpcPort}`,
    `--listen=127.0.0.1:${node.p2pPort}`,
    '--norest',
    '--nobootstrap',
    // Fast test settings: one confirmation opens a channel, gossip is not batched.
    '--bitcoin.defaultchanconfs=1',
    '--trickledelay=50',
    '--debuglevel=info',
  ];
}

/** Waits for the node's RPC (wallet created and unlocked) and records its public key. */
async function waitForNode(net: RegtestNetwork, name: NodeName, timeoutMs: number): Promise<void> {
  const node = net[name];
  await waitUntil(
    `${name}'s lnd RPC`,
    async () => {
      node.pubkey = (
        JSON.parse(await lncli(net, name, 'getinfo')) as { identity_pubkey: string }
      ).identity_pubkey;
      return true;
    },
    timeoutMs,
    node,
  );
}

async function waitForSync(net: RegtestNetwork, name: NodeName, timeoutMs: number): Promise<void> {
  await waitUntil(
    `${name} to sync to the chain`,
    async () =>
      (JSON.parse(await lncli(net, name, 'getinfo')) as { synced_to_chain: boolean }).synced_to_chain,
    timeoutMs,
    net[name],
  );
}

async function connectPeers(net: RegtestNetwork): Promise<void> {
  const connected = async () =>
    (JSON.parse(await lncli(net, 'bob', 'listpeers')) as { peers: { pub_key: string }[] }).peers.some(
      (p) => p.pub_key === net.alice.pubkey,
    );
  if (await connected().catch(() => false)) return;
  await lncli(net, 'bob', 'connect', `${net.alice.pubkey}@127.0.0.1:${net.alice.p2pPort}`).catch((err) => {
    if (!/already connected/i.test(String(err))) throw err;
  });
  await waitUntil('bob to connect to alice', connected, 15_000, net.bob);
}

/**
 * Waits until both ends list the channel as active (peers connected, reestablished) and bob can pay over it:
 * lnd lists a channel as active up to a second before its path finding counts the channel's balance, and a
 * payment made in between fails with "insufficient local balance".
 */
async function waitForChannel(net: RegtestNetwork, timeoutMs: number): Promise<void> {
  const active = async (name: NodeName) =>
    (JSON.parse(await lncli(net, name, 'listchannels', '--active_only')) as { channels: unknown[] }).channels
      .length > 0;
  const routable = async () =>
    (
      JSON.parse(
        await lncli(net, 'bob', 'queryroutes', '--dest', net.alice.pubkey, '--amt', String(ROUTE_PROBE_SATS)),
      ) as { routes: unknown[] }
    ).routes.length > 0;
  await waitUntil(
    'the bob → alice channel to be active and routable',
    async () => (await active('bob')) && (await active('alice')) && routable(),
    timeoutMs,
    net.bob,
  );
}

/** More than any test pays in one payment. */
const ROUTE_PROBE_SATS = 10_000;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
