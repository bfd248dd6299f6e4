/**
 * Bearer tokens (RFC 6750) that are JWTs (RFC 7519) signed by the configured issuer: the one place a request's
 * `Authorization` header becomes a `Caller`, or a 401 with the RFC 6750 challenge.
 */
import { hash } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import type { TokenAlgorithmName } from '#lib/config';
import { AppError, DependencyUnavailableError } from '#lib/errors';
import type { Caller } from '#lib/records';
import { grantsFromScopes, principalOf } from './grants.ts';
import { type KeySet, KeySetUnavailableError } from './key-set.ts';

export interface TokenVerifierOptions {
  readonly keys: KeySet;
  readonly issuer: string;
  readonly audience: string;
  /** Asymmetric only (lib/config's TOKEN_ALGORITHMS). */
  readonly algorithms: readonly TokenAlgorithmName[];
  readonly clockToleranceSeconds: number;
  /** The claim holding the scopes (`scope`, or e.g. `scp`). */
  readonly scopeClaim: string;
  /** Verified tokens kept by digest, so a caller's requests do not each pay for a signature check; 0: none. */
  readonly cacheEntries: number;
  readonly cacheSeconds: number;
}

export interface TokenVerifier {
  /** The caller of a request from its `Authorization` header; throws 401 `unauthorized` or 503. */
  authenticate(authorization: string | undefined): Promise<Caller>;
}

export const REALM = 'data-service';
const MAX_TOKEN_LENGTH = 8 * 1024;
const MAX_SUBJECT_LENGTH = 255;
// RFC 6750 §2.1: "Bearer" 1*SP b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The `WWW-Authenticate` value of RFC 6750 §3: no error code when the request carried no credentials. */
export function bearerChallenge(error?: string, description?: string, scope?: string): string {
  let challenge = `Bearer realm="${REALM}"`;
  if (error !== undefined) challenge += `, error="${error}"`;
  // RFC 6750 §3: the description is printable ASCII without `"` and `\` (and a header must be ASCII anyway).
  if (description !== undefined) {
    challenge += `, error_description="${description.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, "'")}"`;
  }
  if (scope !== undefined) challenge += `, scope="${scope}"`;
  return challenge;
}

const unauthorized = (detail: string, error?: 'invalid_request' | 'invalid_token', cause?: unknown): AppError =>
  new AppError('unauthorized', detail, {
    headers: { 'www-authenticate': bearerChallenge(error, error && detail) },
    cause,
  });

/** Why a token was refused, in words a client can act on (never the token or its claims). */
function reasonOf(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'The token has expired.';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'The token is not valid yet.';
    if (error.claim === 'iss') return 'The token was not issued by the trusted issuer.';
    if (error.claim === 'aud') return 'The token is not meant for this service.';
    return `The token's "${error.claim}" claim is missing or invalid.`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return 'The token is not signed with an accepted algorithm.';
  }
  if (error instanceof errors.JWKSNoMatchingKey) return 'The token is signed with a key the issuer does not publish.';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'The token signature is invalid.';
  return 'The token is malformed.';
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { keys, issuer, audience, clockToleranceSeconds, scopeClaim } = options;
  const algorithms = [...options.algorithms];
  const cache =
    options.cacheEntries > 0
      ? new LRUCache<string, Caller>({ max: options.cacheEntries, ttlAutopurge: false })
      : undefined;

  const verify = async (token: string): Promise<{ caller: Caller; expiresAt: number }> => {
    try {
      const { payload } = await jwtVerify(token, keys.getKey, {
        issuer,
        audience,
        algorithms,
        clockTolerance: clockToleranceSeconds,
        // A token without an expiry would be valid forever; one without a subject has no per-caller state.
        requiredClaims: ['exp', 'sub'],
      });
      const subject = payload.sub ?? '';
      if (subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH) {
        throw unauthorized(`The token's "sub" claim must be 1 to ${MAX_SUBJECT_LENGTH} characters.`, 'invalid_token');
      }
      const caller = principalOf(subject, grantsFromScopes(payload[scopeClaim]));
      return { caller, expiresAt: (payload.exp ?? 0) * 1000 };
    } catch (error) {
      if (error instanceof AppError) throw error;
      if (error instanceof KeySetUnavailableError) throw new DependencyUnavailableError('token issuer', error, 5);
      if (error instanceof errors.JOSEError) throw unauthorized(reasonOf(error), 'invalid_token', error);
      throw error;
    }
  };

  return {
    async authenticate(authorization) {
      if (authorization === undefined || !/^bearer(\s|$)/i.test(authorization)) {
        throw unauthorized('This API needs a bearer token: send "Authorization: Bearer <JWT>".');
      }
      const token = authorization.length <= MAX_TOKEN_LENGTH ? BEARER.exec(authorization)?.[1] : undefined;
      if (token === undefined) {
        throw unauthorized(
          'The Authorization header is not "Bearer <token>" with one well-formed token.',
          'invalid_request',
        );
      }
      if (cache === undefined) return (await verify(token)).caller;
      // One-shot hash: no Hash object per request (the verified-token cache is on every request's path).
      const digest = hash('sha256', token, 'base64url');
      const cached = cache.get(digest);
      if (cached !== undefined) return cached;
      const { caller, expiresAt } = await verify(token);
      // Kept no longer than the token is valid (its exp, without the clock tolerance) nor than the cache's TTL.
      const ttl = Math.min(options.cacheSeconds * 1000, expiresAt - Date.now());
      if (ttl > 0) cache.set(digest, caller, { ttl });
      return caller;
    },
  };
}
