/**
 * The token issuer of a machine without one: an ES256 key kept in `.data/auth/` (created on first use, kept
 * across restarts), its public JWKS, and tokens signed with it. `npm start` serves the JWKS to the functions and
 * prints a token; `npm run token` prints more; the tests sign theirs with an in-memory one.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  SignJWT,
} from 'jose';
import { scopeOf } from '#lib/auth';
import { ROOT } from './processes.ts';

export const LOCAL_ISSUER = 'urn:data-service:local-issuer';
export const LOCAL_AUDIENCE = 'data-service';
export const LOCAL_KEY_FILE = join(ROOT, '.data', 'auth', 'issuer-key.json');
/** Where `npm start` serves the JWKS on its own address. */
export const JWKS_PATH = '/.well-known/jwks.json';

export interface TokenRequest {
  readonly subject?: string;
  readonly write?: readonly string[];
  readonly read?: readonly string[];
  readonly ttlSeconds?: number;
  /** Overrides of any claim or header field, for tests of bad tokens. */
  readonly claims?: Readonly<Record<string, unknown>>;
  readonly notBefore?: number;
  readonly audience?: string;
  readonly issuer?: string;
}

export interface LocalIssuer {
  readonly issuer: string;
  readonly audience: string;
  /** The public keys, as served at the JWKS URL. */
  readonly jwks: JSONWebKeySet;
  sign(request: TokenRequest): Promise<string>;
}

/** An issuer of this private key (a JWK with `d`). */
export async function issuerOf(privateJwk: JWK): Promise<LocalIssuer> {
  const kid = privateJwk.kid ?? (await calculateJwkThumbprint(privateJwk));
  const key = await importJWK(privateJwk, 'ES256');
  const { d: _private, ...publicJwk } = privateJwk;
  return {
    issuer: LOCAL_ISSUER,
    audience: LOCAL_AUDIENCE,
    jwks: { keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' }] },
    async sign(request) {
      const now = Math.floor(Date.now() / 1000);
      const jwt = new SignJWT({ scope: scopeOf(request), ...request.claims })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(request.issuer ?? LOCAL_ISSUER)
        .setAudience(request.audience ?? LOCAL_AUDIENCE)
        .setSubject(request.subject ?? 'local-user')
        .setIssuedAt(now)
        .setExpirationTime(now + (request.ttlSeconds ?? 3_600));
      if (request.notBefore !== undefined) jwt.setNotBefore(request.notBefore);
      return jwt.sign(key);
    },
  };
}

/** A new ES256 private key as a JWK. */
export async function newIssuerKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES256' };
}

/** The machine's local issuer, its key created under `.data/auth/` (readable by its owner only) if missing. */
export async function localIssuer(file = LOCAL_KEY_FILE): Promise<LocalIssuer> {
  if (!existsSync(file)) {
    // Only the key's own folder is owner-only: `recursive` would give that mode to .data/ too, which the embedded
    // PostgreSQL's `postgres` user must pass through (scripts/embedded-postgres.ts).
    mkdirSync(join(file, '..', '..'), { recursive: true });
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${JSON.stringify(await newIssuerKey())}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return issuerOf(JSON.parse(readFileSync(file, 'utf8')) as JWK);
}
