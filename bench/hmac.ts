/**
 * The verify path's hashing per token: root-key derivation, key generator, identifier and five caveats (seven
 * HMAC-SHA256) and the preimage's SHA-256, four ways:
 *   createHmac    — an Hmac object per step, createHash for the preimage (Plannt before issue 12)
 *   hash→Buffer   — two crypto.hash one-shots per HMAC over a scratch buffer, digests returned as Buffers
 *   hash copies   — pad states precomputed for the two constant keys (server key, generator) and copy()'d;
 *                   createHmac for the caveat steps, whose keys change every step
 *   Plannt        — src/l402/hmac.ts: one-shots with digests as latin1 strings until the chain's end
 * Each figure is CPU time, the fastest of the rounds, in µs per token.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/hmac.js [iterations] [rounds]
 */
import { createHash, createHmac, type Hash, hash, randomBytes } from 'node:crypto';
import { sha256 } from '../src/l402/hmac';
import { macaroonRootKey } from '../src/l402/keys';
import { sign } from '../src/l402/macaroon';

const iterations = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 5);
const serverKey = randomBytes(32);
const identifier = randomBytes(66);
const caveats = [
  'services=weather:0',
  'weather_valid_until=1900000000',
  'plannt_route=forecast',
  'plannt_price_sats=10',
  `preimage=${'ab'.repeat(32)}`,
].map((c) => Buffer.from(c));
const preimage = randomBytes(32);
const GENERATOR = Buffer.from('macaroons-key-generator');

type Mac = (key: Buffer, data: Buffer) => Buffer;

const chainOf = (mac: Mac, digest: (data: Buffer) => Buffer) => (): Buffer => {
  const rootKey = mac(serverKey, identifier);
  let sig = mac(mac(GENERATOR, rootKey), identifier);
  for (const caveat of caveats) sig = mac(sig, caveat);
  digest(preimage);
  return sig;
};

const viaCreateHmac: Mac = (key, data) => createHmac('sha256', key).update(data).digest();

const scratch = Buffer.alloc(64 + 256);
const viaHashBuffers: Mac = (key, data) => {
  for (let i = 0; i < 64; i++) scratch[i] = (key[i] ?? 0) ^ 0x36;
  data.copy(scratch, 64);
  const inner = hash('sha256', scratch.subarray(0, 64 + data.length), 'buffer');
  for (let i = 0; i < 64; i++) scratch[i] = (key[i] ?? 0) ^ 0x5c;
  inner.copy(scratch, 64);
  return hash('sha256', scratch.subarray(0, 96), 'buffer');
};

const states = new Map<Buffer, [Hash, Hash]>();
const padStates = (key: Buffer): [Hash, Hash] => {
  const block = Buffer.alloc(64);
  key.copy(block);
  return [
    createHash('sha256').update(block.map((b) => b ^ 0x36)),
    createHash('sha256').update(block.map((b) => b ^ 0x5c)),
  ];
};
states.set(serverKey, padStates(serverKey));
states.set(GENERATOR, padStates(GENERATOR));
const viaHashCopies: Mac = (key, data) => {
  const pair = states.get(key);
  if (!pair) return viaCreateHmac(key, data);
  return pair[1].copy().update(pair[0].copy().update(data).digest()).digest();
};

const variants: [string, () => Buffer][] = [
  ['createHmac', chainOf(viaCreateHmac, (d) => createHash('sha256').update(d).digest())],
  ['hash→Buffer', chainOf(viaHashBuffers, (d) => hash('sha256', d, 'buffer'))],
  ['hash copies', chainOf(viaHashCopies, (d) => createHash('sha256').update(d).digest())],
  [
    'Plannt',
    () => {
      const sig = sign(macaroonRootKey(serverKey, identifier), identifier, caveats);
      sha256(preimage);
      return sig;
    },
  ],
];

const expected = variants[0]?.[1]();
for (const [name, run] of variants)
  if (!run().equals(expected as Buffer)) throw new Error(`${name} computes another signature`);

const best = new Map<string, number>();
for (let round = 0; round < rounds; round++) {
  for (const [name, run] of round % 2 ? [...variants].reverse() : variants) {
    for (let i = 0; i < iterations / 10; i++) run();
    // CPU time, not wall time: the figures stay honest on a shared machine.
    const start = process.cpuUsage();
    for (let i = 0; i < iterations; i++) run();
    const used = process.cpuUsage(start);
    const us = (used.user + used.system) / iterations;
    best.set(name, Math.min(best.get(name) ?? Number.POSITIVE_INFINITY, us));
  }
}
for (const [name, us] of best) process.stdout.write(`${name.padEnd(12)} ${us.toFixed(2)} µs per token\n`);
