/**
 * The token issuer of the tests: an ES256 key made once per test process, its JWKS served on a loopback port,
 * and tokens signed with it (scripts/local-issuer.ts, the issuer `npm start` uses). Test apps trust it unless
 * started with `auth: false`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JSONWebKeySet } from 'jose';
import { issuerOf, type LocalIssuer, newIssuerKey, type TokenRequest } from '../../scripts/local-issuer.ts';

export interface TestIssuer extends LocalIssuer {
  readonly jwksUrl: string;
  /** Replaces the published key set (key rotation, an empty set); `undefined` restores the issuer's own. */
  publish(jwks: JSONWebKeySet | undefined): void;
  /** How often the key set was fetched. */
  fetches(): number;
  /** A token of `subject` granting `write` and `read` on every source. */
  allAccess(subject?: string): Promise<string>;
}

let shared: Promise<TestIssuer> | undefined;

/** The process's test issuer, started on first use (its server does not keep the process alive). */
export function testIssuer(): Promise<TestIssuer> {
  shared ??= startIssuer();
  return shared;
}

/** Another issuer with a key and JWKS server of its own. */
export async function startIssuer(): Promise<TestIssuer> {
  const issuer = await issuerOf(await newIssuerKey());
  let published: JSONWebKeySet | undefined;
  let fetches = 0;
  const server: Server = createServer((_request, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify(published ?? issuer.jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  const { port } = server.address() as AddressInfo;
  const tokens = new Map<string, Promise<string>>();
  return {
    ...issuer,
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    publish: (jwks) => {
      published = jwks;
    },
    fetches: () => fetches,
    allAccess(subject = 'test-caller') {
      let token = tokens.get(subject);
      if (token === undefined) {
        token = issuer.sign({ subject, write: ['*'], read: ['*'], ttlSeconds: 3_600 });
        tokens.set(subject, token);
      }
      return token;
    },
  };
}

/** `{ authorization: 'Bearer …' }` for a token of the test issuer. */
export async function bearer(request?: TokenRequest): Promise<{ authorization: string }> {
  const issuer = await testIssuer();
  return { authorization: `Bearer ${request === undefined ? await issuer.allAccess() : await issuer.sign(request)}` };
}

/** Settings of a spawned bundle (K_SERVICE set, as in a cluster) that tests something other than access control. */
export const OPEN_BUNDLE_ENV = { AUTH_MODE: 'none', CURSOR_SECRET: 'test-cursor-secret-0123456789' } as const;

/** Settings of a spawned bundle that trusts `issuer`. */
export const issuerEnv = (issuer: TestIssuer): Record<string, string> => ({
  AUTH_JWKS_URL: issuer.jwksUrl,
  AUTH_ISSUER: issuer.issuer,
  AUTH_AUDIENCE: issuer.audience,
  CURSOR_SECRET: 'test-cursor-secret-0123456789',
});
