/**
 * The issuer's public keys (a JWKS URL), cached in the process.
 *
 * jose's `createRemoteJWKSet` does the fetching we need but not the failure handling: a refresh that fails while
 * the cached set is stale fails every request, and after a failed fetch an unknown `kid` fetches again on every
 * request (its cooldown counts from the last *successful* fetch). Here, keys once fetched stay in use while the
 * issuer is unreachable (refreshed in the background, never on the request's path), and fetches of any outcome
 * are spaced by a cooldown, so a stream of tokens with made-up `kid`s costs the issuer one request per cooldown.
 */
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from '#lib/observability';

const MAX_KEY_SET_BYTES = 1024 * 1024;

export interface KeySetOptions {
  readonly url: string;
  /** Age after which the set is refreshed in the background. */
  readonly refreshMs: number;
  /** Least time between two fetches (an unknown `kid` asks for one). */
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  readonly logger: Logger;
}

/** The key set could not be fetched and no keys are held: the request may succeed later (503). */
export class KeySetUnavailableError extends Error {
  constructor(cause: unknown) {
    super('the token issuer key set is unavailable', { cause });
    this.name = 'KeySetUnavailableError';
  }
}

export interface KeySet {
  /** A key resolver for jose's `jwtVerify`. */
  readonly getKey: JWTVerifyGetKey;
  status(): { readonly keys: number; readonly fetchedAt: number | undefined; readonly failures: number };
}

export function createKeySet({ url, refreshMs, cooldownMs, timeoutMs, logger }: KeySetOptions): KeySet {
  let local: ReturnType<typeof createLocalJWKSet> | undefined;
  let keys = 0;
  let fetchedAt: number | undefined;
  let attemptedAt = Number.NEGATIVE_INFINITY;
  let lastError: unknown;
  let failures = 0;
  let pending: Promise<void> | undefined;

  const fetchSet = async (): Promise<void> => {
    attemptedAt = Date.now();
    try {
      const response = await fetch(url, {
        headers: { accept: 'application/jwk-set+json, application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status !== 200) throw new Error(`the key set answered HTTP ${response.status}`);
      // A key set is a few KiB; a bound keeps a misconfigured URL from filling the heap.
      if (Number(response.headers.get('content-length') ?? 0) > MAX_KEY_SET_BYTES) {
        throw new Error(`the key set is larger than ${MAX_KEY_SET_BYTES} bytes`);
      }
      const text = await response.text();
      if (text.length > MAX_KEY_SET_BYTES) throw new Error(`the key set is larger than ${MAX_KEY_SET_BYTES} bytes`);
      const set = JSON.parse(text) as JSONWebKeySet;
      if (!Array.isArray(set?.keys)) throw new Error('the key set has no "keys" array');
      local = createLocalJWKSet(set);
      keys = set.keys.length;
      fetchedAt = Date.now();
    } catch (error) {
      failures++;
      lastError = error;
      logger.warn({ err: error, jwks_url: url }, 'could not fetch the token issuer key set');
    }
  };
  /** One fetch at a time, at most one per cooldown; resolves when it is done (never rejects). */
  const refresh = (): Promise<void> => {
    if (pending === undefined && Date.now() - attemptedAt >= cooldownMs) {
      pending = fetchSet().finally(() => {
        pending = undefined;
      });
    }
    return pending ?? Promise.resolve();
  };

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (local === undefined) {
      await refresh();
      if (local === undefined) throw new KeySetUnavailableError(lastError);
    } else if (fetchedAt !== undefined && Date.now() - fetchedAt > refreshMs) {
      void refresh();
    }
    try {
      return await local(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      // A key the issuer may have added since: look once (per cooldown), then decide.
      const before = local;
      await refresh();
      if (local === before) throw error;
      return local(header, token);
    }
  };

  return { getKey, status: () => ({ keys, fetchedAt, failures }) };
}
