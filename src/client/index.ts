/** `plannt/client`: an L402 client for agents, with spend caps. */
export { type Allowance, allowance, type BudgetLimit, type BudgetLimits, type Spend } from './budget';
export {
  checkOffer,
  findChallenge,
  type L402Challenge,
  type Offer,
  readOffer,
  type Scheme,
} from './challenge';
export {
  BudgetExceededError,
  ChallengeError,
  type ChallengeProblem,
  L402ClientError,
  PaymentError,
  type PaymentProblem,
} from './errors';
export {
  createL402Client,
  DEFAULT_MAX_FEE_SATS,
  DEFAULT_MIN_INVOICE_VALIDITY_SECONDS,
  type L402Client,
  type L402Options,
  type L402Result,
  l402Fetch,
  l402Request,
  type Receipt,
  type WouldPay,
} from './fetch';
export {
  type LedgerEntry,
  type LedgerOptions,
  type PaymentStatus,
  SpendLedger,
  type SpendReport,
} from './ledger';
export { NETWORKS, type Network } from './network';
export { fileTokenStore, memoryTokenStore, type StoredToken, type TokenStore } from './token-store';
export type { PayLimits, Payment, Wallet } from './wallet';
export { type DevWalletOptions, devWallet } from './wallets/dev';
export { type LndWalletOptions, lndWallet, lndWalletOptionsFromFiles } from './wallets/lnd';
