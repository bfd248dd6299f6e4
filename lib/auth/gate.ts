/**
 * The door of every data route: who the caller is (the token) and whether it may ask again so soon (the rate
 * limit), in that order, before any of the request is parsed. lib/api's route table says which routes have it.
 */
import type { AuthConfig, RateLimitConfig } from '#lib/config';
import type { Logger } from '#lib/observability';
import type { Caller } from '#lib/records';
import { ANONYMOUS } from './grants.ts';
import { createKeySet } from './key-set.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import { createTokenVerifier, type TokenVerifier } from './verifier.ts';

export interface Admission {
  readonly caller: Caller;
  /** Headers every answer to this request carries (the `RateLimit` fields). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface AccessGate {
  /** Whether callers are told apart: responses are then private to their caller (`Vary: Authorization`). */
  readonly authenticates: boolean;
  /** Admits a request from its `Authorization` header, or throws a 401, 429 or 503 AppError. */
  admit(authorization: string | undefined): Promise<Admission>;
  /** Requests refused by the rate limit so far. */
  limited(): number;
}

const OPEN: Admission = { caller: ANONYMOUS, headers: {} };

/** A gate of `verifier` (AUTH_MODE=jwt) and `limiter`; without a verifier, everyone is the anonymous caller. */
export function createAccessGate(verifier: TokenVerifier | undefined, limiter: RateLimiter | undefined): AccessGate {
  if (verifier === undefined) return { authenticates: false, admit: async () => OPEN, limited: () => 0 };
  return {
    authenticates: true,
    limited: () => limiter?.limited() ?? 0,
    async admit(authorization) {
      const caller = await verifier.authenticate(authorization);
      return { caller, headers: limiter ? await limiter.take(caller.id) : {} };
    },
  };
}

export interface GateSettings {
  readonly auth: AuthConfig;
  readonly rateLimit: RateLimitConfig;
  /** Redis for counting across pods (keys under `keyPrefix`); per process without it. */
  readonly redis?: unknown;
  readonly keyPrefix: string;
  readonly logger: Logger;
}

/** The gate a function runs with, from its configuration (functions/<fn>/app.ts). */
export function accessGateFor({ auth, rateLimit, redis, keyPrefix, logger }: GateSettings): AccessGate {
  if (auth.mode === 'none') {
    logger.warn('AUTH_MODE=none: every caller may read and write every source; never expose this deployment');
    return createAccessGate(undefined, undefined);
  }
  const keys = createKeySet({
    url: auth.jwksUrl,
    refreshMs: auth.jwksRefreshSeconds * 1000,
    cooldownMs: auth.jwksCooldownSeconds * 1000,
    timeoutMs: auth.jwksTimeoutMs,
    logger,
  });
  const verifier = createTokenVerifier({
    ...auth,
    keys,
    cacheSeconds: auth.tokenCacheSeconds,
    cacheEntries: auth.tokenCacheEntries,
  });
  const limiter =
    rateLimit.perSecond > 0
      ? createRateLimiter({ ...rateLimit, burst: Math.max(rateLimit.burst, rateLimit.perSecond), redis, keyPrefix })
      : undefined;
  return createAccessGate(verifier, limiter);
}
