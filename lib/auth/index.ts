export { type AccessGate, type Admission, accessGateFor, createAccessGate, type GateSettings } from './gate.ts';
export { ANONYMOUS, grantsFromScopes, principalOf, type SourceGrant, scopeOf, sourceGrant } from './grants.ts';
export { createKeySet, type KeySet, type KeySetOptions, KeySetUnavailableError } from './key-set.ts';
export { createRateLimiter, type RateLimiter, type RateLimitOptions } from './rate-limit.ts';
export {
  bearerChallenge,
  createTokenVerifier,
  REALM,
  type TokenVerifier,
  type TokenVerifierOptions,
} from './verifier.ts';
