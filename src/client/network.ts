/** Bitcoin networks as BOLT11 names them in the invoice prefix (`lnbc…`, `lntb…`, `lnbcrt…`). */

export const NETWORKS = ['bitcoin', 'testnet', 'signet', 'regtest', 'simnet'] as const;
export type Network = (typeof NETWORKS)[number];

/** BOLT11 human-readable prefix (after `ln`) of each network. */
export const BECH32_PREFIX: Record<Network, string> = {
  bitcoin: 'bc',
  testnet: 'tb',
  signet: 'tbs',
  regtest: 'bcrt',
  simnet: 'sb',
};

/** Genesis block hashes in display order (block explorers, ln-service's bolt02 ids). */
const GENESIS: Record<string, Network> = {
  '000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f': 'bitcoin',
  '000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943': 'testnet',
  '00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043': 'testnet', // testnet4 also uses `lntb`
  '00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6': 'signet',
  '0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206': 'regtest',
};

/**
 * The network of a chain id as getWalletInfo's `chains` reports it. LND 0.18+ sends the hash in internal
 * (reversed) byte order, e.g. regtest as `06226e46…0f`; display order is accepted too.
 */
export function networkOfChain(chainId: string): Network | undefined {
  const reversed = Buffer.from(chainId, 'hex').reverse().toString('hex');
  return GENESIS[chainId.toLowerCase()] ?? GENESIS[reversed];
}

export function isNetwork(value: string): value is Network {
  return (NETWORKS as readonly string[]).includes(value);
}
