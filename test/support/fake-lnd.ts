/**
 * A fake LND node for fast tests.
 *
 * It serves LND's own `lightning.proto` (package `lnrpc`, service `Lightning`) over TLS and checks the
 * `macaroon` gRPC metadata on every call, so the real `ln-service` client is exercised over the wire.
 *
 * Implemented RPCs (everything else answers UNIMPLEMENTED):
 * - `GetInfo`        used by ln-service `getWalletInfo`
 * - `AddInvoice`     used by ln-service `createInvoice` (which then calls `LookupInvoice`)
 * - `LookupInvoice`  used by ln-service `createInvoice` and `getInvoice`
 * - `ListInvoices`   used by ln-service `getInvoices`
 *
 * Invoices carry real, signed BOLT11 regtest payment requests (`lnbcrt…`).
 */
import { execFile } from 'node:child_process';
import { createECDH, createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import * as bolt11 from 'bolt11';

const execFileAsync = promisify(execFile);

/** The `lightning` package (what ln-service runs on) ships the LND protos its client loads. */
const PROTO_PATH = require.resolve('lightning/grpc/protos/lightning.proto');

/** Same options as `lightning/lnd_grpc/grpc_options.js`, so field names and value shapes match the client. */
const LOADER_OPTIONS = { defaults: true, enums: String, keepCase: true, longs: String, oneofs: true };

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
const DEFAULT_EXPIRY_SECONDS = 86_400; // LND's default invoice expiry
const DEFAULT_CLTV_EXPIRY = 80; // LND's default min_final_cltv_expiry
const DEFAULT_LIST_LIMIT = 100;
const BLOCK_HEIGHT = 150;

/** Invoice features LND advertises (var_onion_optin required, payment_secret required, basic_mpp optional). */
const INVOICE_FEATURES = {
  9: { name: 'tlv-onion', is_required: true, is_known: true },
  14: { name: 'payment-addr', is_required: true, is_known: true },
  17: { name: 'multi-path-payments', is_required: false, is_known: true },
};

export interface FakeLndInvoice {
  paymentHash: Buffer;
  preimage: Buffer;
  valueSat: number;
  memo: string;
  expirySeconds: number;
  paymentRequest: string;
}

export interface FakeLnd {
  /** `127.0.0.1:<port>` */
  socket: string;
  /** Base64 of the PEM TLS cert, as ln-service's `cert` option wants. */
  certBase64: string;
  /** Hex macaroon the client must send; any other (or missing) macaroon gets UNAUTHENTICATED. */
  macaroonHex: string;
  /** Hex compressed secp256k1 node public key; it signs every payment request. */
  identityPubkey: string;
  /** Invoices created so far, oldest first. */
  invoices: FakeLndInvoice[];
  /** Delay every reply (including errors) by `ms`, to simulate a slow node. */
  setDelayMs(ms: number): void;
  /** While down, every call fails with UNAVAILABLE. */
  setDown(down: boolean): void;
  /** Shut the server down and start it again on the same port (open calls are cancelled; invoices kept). */
  restart(): Promise<void>;
  /** Close the server, free the port and remove the temporary TLS files. */
  stop(): Promise<void>;
}

interface StoredInvoice {
  pub: FakeLndInvoice;
  addIndex: number;
  valueMsat: bigint;
  creationDate: number;
  paymentAddr: Buffer;
  descriptionHash: Buffer;
  cltvExpiry: number;
  isPrivate: boolean;
  fallbackAddr: string;
}

type Req = Record<string, unknown>;
type Handler = (req: Req) => Req;

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

const asBuffer = (value: unknown): Buffer => (Buffer.isBuffer(value) ? value : Buffer.alloc(0));

const asBigInt = (value: unknown): bigint => {
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return 0n;
};

const asNumber = (value: unknown): number => Number(asBigInt(value));

const OPENSSL_CONFIG = `[req]
distinguished_name = dn
x509_extensions = v3
prompt = no

[dn]
O = fake-lnd
CN = localhost

[v3]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
`;

/** Self-signed EC (prime256v1) cert for 127.0.0.1/localhost, like the one LND generates. */
async function generateTlsCert(dir: string): Promise<{ cert: Buffer; key: Buffer }> {
  const configPath = join(dir, 'openssl.cnf');
  const keyPath = join(dir, 'tls.key');
  const certPath = join(dir, 'tls.cert');
  await writeFile(configPath, OPENSSL_CONFIG);
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-config',
    configPath,
    '-keyout',
    keyPath,
    '-out',
    certPath,
  ]);
  const [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
  return { cert, key };
}

function bindServer(server: grpc.Server, address: string, credentials: grpc.ServerCredentials) {
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function shutdownServer(server: grpc.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    // Give in-flight calls a moment, then cut everything (including clients' idle connections).
    const timer = setTimeout(() => server.forceShutdown(), 100);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startFakeLnd(): Promise<FakeLnd> {
  const packageDefinition = loadSync(PROTO_PATH, LOADER_OPTIONS);
  const lightningService = packageDefinition['lnrpc.Lightning'] as grpc.ServiceDefinition | undefined;
  if (!lightningService) throw new Error('lnrpc.Lightning service not found in lightning.proto');

  const tlsDir = await mkdtemp(join(tmpdir(), 'fake-lnd-'));
  let tls: { cert: Buffer; key: Buffer };
  try {
    tls = await generateTlsCert(tlsDir);
  } catch (err) {
    await rm(tlsDir, { recursive: true, force: true });
    throw err;
  }

  const macaroonHex = randomBytes(64).toString('hex');
  const nodeKey = createECDH('secp256k1');
  const nodePrivateKey = randomBytes(32);
  nodeKey.setPrivateKey(nodePrivateKey);
  const identityPubkey = nodeKey.getPublicKey('hex', 'compressed');

  const invoices: FakeLndInvoice[] = [];
  const stored: StoredInvoice[] = [];
  const byHash = new Map<string, StoredInvoice>();
  let delayMs = 0;
  let down = false;
  const pendingTimers = new Set<NodeJS.Timeout>();

  const rpcInvoice = (inv: StoredInvoice): Req => ({
    memo: inv.pub.memo,
    r_preimage: inv.pub.preimage,
    r_hash: inv.pub.paymentHash,
    value: (inv.valueMsat / 1000n).toString(),
    value_msat: inv.valueMsat.toString(),
    settled: false,
    creation_date: String(inv.creationDate),
    settle_date: '0',
    payment_request: inv.pub.paymentRequest,
    description_hash: inv.descriptionHash,
    expiry: String(inv.pub.expirySeconds),
    fallback_addr: inv.fallbackAddr,
    cltv_expiry: String(inv.cltvExpiry),
    route_hints: [],
    private: inv.isPrivate,
    add_index: String(inv.addIndex),
    settle_index: '0',
    amt_paid: '0',
    amt_paid_sat: '0',
    amt_paid_msat: '0',
    state: 'OPEN',
    htlcs: [],
    features: INVOICE_FEATURES,
    is_keysend: false,
    payment_addr: inv.paymentAddr,
    is_amp: false,
    amp_invoice_state: {},
    is_blinded: false,
  });

  const addInvoice: Handler = (req) => {
    const preimage = asBuffer(req.r_preimage).length ? asBuffer(req.r_preimage) : randomBytes(32);
    if (preimage.length !== 32) {
      throw new RpcError(grpc.status.UNKNOWN, 'payment preimage must be exactly 32 bytes');
    }
    const paymentHash = sha256(preimage);
    if (byHash.has(paymentHash.toString('hex'))) {
      throw new RpcError(grpc.status.UNKNOWN, 'invoice with payment hash already exists');
    }
    const value = asBigInt(req.value);
    const valueMsatField = asBigInt(req.value_msat);
    if (value !== 0n && valueMsatField !== 0n) {
      throw new RpcError(grpc.status.UNKNOWN, 'value and value_msat are mutually exclusive');
    }
    const valueMsat = valueMsatField !== 0n ? valueMsatField : value * 1000n;
    if (valueMsat < 0n) throw new RpcError(grpc.status.UNKNOWN, 'payments of negative value are not allowed');

    const memo = typeof req.memo === 'string' ? req.memo : '';
    const descriptionHash = asBuffer(req.description_hash);
    const expirySeconds = asNumber(req.expiry) > 0 ? asNumber(req.expiry) : DEFAULT_EXPIRY_SECONDS;
    const cltvExpiry = asNumber(req.cltv_expiry) > 0 ? asNumber(req.cltv_expiry) : DEFAULT_CLTV_EXPIRY;
    const paymentAddr = randomBytes(32);
    const creationDate = Math.floor(Date.now() / 1000);

    const tags: bolt11.PaymentRequestObject['tags'] = [
      { tagName: 'payment_hash', data: paymentHash.toString('hex') },
      descriptionHash.length
        ? { tagName: 'purpose_commit_hash', data: descriptionHash.toString('hex') }
        : { tagName: 'description', data: memo },
      { tagName: 'expire_time', data: expirySeconds },
      { tagName: 'min_final_cltv_expiry', data: cltvExpiry },
      { tagName: 'payment_secret', data: paymentAddr.toString('hex') },
      {
        tagName: 'feature_bits',
        data: {
          word_length: 4,
          var_onion_optin: { required: true, supported: true },
          payment_secret: { required: true, supported: true },
        },
      },
    ];
    const unsigned = bolt11.encode(
      {
        network: REGTEST,
        timestamp: creationDate,
        tags,
        ...(valueMsat > 0n ? { millisatoshis: valueMsat.toString() } : {}),
      },
      false,
    );
    const paymentRequest = bolt11.sign(unsigned, nodePrivateKey).paymentRequest;
    if (!paymentRequest) throw new RpcError(grpc.status.INTERNAL, 'failed to sign payment request');

    const pub: FakeLndInvoice = {
      paymentHash,
      preimage,
      valueSat: Number(valueMsat / 1000n),
      memo,
      expirySeconds,
      paymentRequest,
    };
    const inv: StoredInvoice = {
      pub,
      addIndex: stored.length + 1,
      valueMsat,
      creationDate,
      paymentAddr,
      descriptionHash,
      cltvExpiry,
      isPrivate: req.private === true,
      fallbackAddr: typeof req.fallback_addr === 'string' ? req.fallback_addr : '',
    };
    stored.push(inv);
    invoices.push(pub);
    byHash.set(paymentHash.toString('hex'), inv);

    return {
      r_hash: paymentHash,
      payment_request: paymentRequest,
      add_index: String(inv.addIndex),
      payment_addr: paymentAddr,
    };
  };

  const lookupInvoice: Handler = (req) => {
    const hash = asBuffer(req.r_hash).length
      ? asBuffer(req.r_hash).toString('hex')
      : typeof req.r_hash_str === 'string'
        ? req.r_hash_str.toLowerCase()
        : '';
    if (hash.length !== 64) throw new RpcError(grpc.status.UNKNOWN, 'payment hash must be exactly 32 bytes');
    const inv = byHash.get(hash);
    if (!inv) throw new RpcError(grpc.status.NOT_FOUND, 'unable to locate invoice');
    return rpcInvoice(inv);
  };

  /** Mirrors LND's paging: `index_offset` is exclusive; `reversed` pages backwards from the newest. */
  const listInvoices: Handler = (req) => {
    // `pending_only` is ignored: fake invoices are never settled or canceled, so all of them are pending.
    const reversed = req.reversed === true;
    const offset = asNumber(req.index_offset);
    const limit = asNumber(req.num_max_invoices) || DEFAULT_LIST_LIMIT;
    const start = asNumber(req.creation_date_start);
    const end = asNumber(req.creation_date_end);

    const matching = stored.filter(
      (inv) => (!start || inv.creationDate >= start) && (!end || inv.creationDate <= end),
    );
    let page: StoredInvoice[];
    if (reversed) {
      const before = offset === 0 ? matching : matching.filter((inv) => inv.addIndex < offset);
      page = before.slice(Math.max(0, before.length - limit));
    } else {
      page = matching.filter((inv) => inv.addIndex > offset).slice(0, limit);
    }
    const first = page[0];
    const last = page[page.length - 1];
    return {
      invoices: page.map(rpcInvoice),
      first_index_offset: String(first ? first.addIndex : 0),
      last_index_offset: String(last ? last.addIndex : 0),
    };
  };

  const getInfo: Handler = () => ({
    version: '0.18.5-beta commit=v0.18.5-beta',
    commit_hash: 'fakefakefakefakefakefakefakefakefakefake',
    identity_pubkey: identityPubkey,
    alias: 'fake-lnd',
    color: '#3399ff',
    num_pending_channels: 0,
    num_active_channels: 1,
    num_inactive_channels: 0,
    num_peers: 1,
    block_height: BLOCK_HEIGHT,
    block_hash: sha256(Buffer.from(`fake-lnd-block-${BLOCK_HEIGHT}`)).toString('hex'),
    best_header_timestamp: String(Math.floor(Date.now() / 1000)),
    synced_to_chain: true,
    synced_to_graph: true,
    testnet: false,
    chains: [{ chain: 'bitcoin', network: 'regtest' }],
    uris: [],
    features: {
      0: { name: 'data-loss-protect', is_required: true, is_known: true },
      9: { name: 'tlv-onion', is_required: true, is_known: true },
      14: { name: 'payment-addr', is_required: true, is_known: true },
      17: { name: 'multi-path-payments', is_required: false, is_known: true },
    },
    require_htlc_interceptor: false,
    store_final_htlc_resolutions: false,
    wallet_synced: true,
  });

  const unary = (handler: Handler): grpc.handleUnaryCall<Req, Req> => {
    return (call, callback) => {
      const reply = () => {
        if (call.cancelled) return;
        if (down) {
          callback({ code: grpc.status.UNAVAILABLE, details: 'fake-lnd is down' });
          return;
        }
        const sent = call.metadata.get('macaroon');
        if (sent.length !== 1 || String(sent[0]) !== macaroonHex) {
          callback({ code: grpc.status.UNAUTHENTICATED, details: 'verification failed: signature mismatch' });
          return;
        }
        try {
          callback(null, handler(call.request));
        } catch (err) {
          const code = err instanceof RpcError ? err.code : grpc.status.INTERNAL;
          callback({ code, details: err instanceof Error ? err.message : String(err) });
        }
      };
      if (delayMs <= 0) {
        reply();
        return;
      }
      const timer = setTimeout(() => {
        pendingTimers.delete(timer);
        reply();
      }, delayMs);
      pendingTimers.add(timer);
    };
  };

  const implementation: grpc.UntypedServiceImplementation = {
    GetInfo: unary(getInfo),
    AddInvoice: unary(addInvoice),
    LookupInvoice: unary(lookupInvoice),
    ListInvoices: unary(listInvoices),
  };

  const credentials = grpc.ServerCredentials.createSsl(
    null,
    [{ private_key: tls.key, cert_chain: tls.cert }],
    false,
  );

  const createServer = () => {
    const server = new grpc.Server();
    server.addService(lightningService, implementation);
    return server;
  };

  let server = createServer();
  let port: number;
  try {
    port = await bindServer(server, '127.0.0.1:0', credentials);
  } catch (err) {
    server.forceShutdown();
    await rm(tlsDir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;

  const clearPending = () => {
    for (const timer of pendingTimers) clearTimeout(timer);
    pendingTimers.clear();
  };

  return {
    socket: `127.0.0.1:${port}`,
    certBase64: tls.cert.toString('base64'),
    macaroonHex,
    identityPubkey,
    invoices,
    setDelayMs(ms: number) {
      delayMs = Math.max(0, ms);
    },
    setDown(value: boolean) {
      down = value;
    },
    async restart() {
      if (stopped) throw new Error('fake-lnd already stopped');
      clearPending();
      await shutdownServer(server);
      server = createServer();
      await bindServer(server, `127.0.0.1:${port}`, credentials);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearPending();
      await shutdownServer(server);
      await rm(tlsDir, { recursive: true, force: true });
    },
  };
}
