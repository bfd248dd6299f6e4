/**
 * `npm run bench:auth`: what access control costs one request, in CPU µs of this process: a bearer token verified
 * with its signature checked (ES256 and RS256), the same token found in the verified-token cache, and one count
 * of the per-caller rate limit in Redis (REDIS_URL, e.g. from `eval "$(npm run -s services:up)"`; skipped without).
 * The serving-side figure with everything around it is `npm run bench` (post-one, get-hot) against
 * `BENCH_AUTH=none npm run bench`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createKeySet, createRateLimiter, createTokenVerifier } from '#lib/auth';
import { createSilentLogger } from '#lib/observability';
import { helpFromHeader } from '../help.ts';
import { issuerOf, newIssuerKey } from '../local-issuer.ts';

helpFromHeader(import.meta.url);

const N = Number(process.env.BENCH_AUTH_ITERATIONS ?? 5_000);
const issuer = await issuerOf(await newIssuerKey());
const rsa = await generateKeyPair('RS256');
const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256' };
const jwks = JSON.stringify({ keys: [...issuer.jwks.keys, rsaJwk] });
const server = createServer((_request, response) => response.end(jwks));
await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

const verifier = (cacheEntries: number) =>
  createTokenVerifier({
    keys: createKeySet({ url, refreshMs: 600_000, cooldownMs: 30_000, timeoutMs: 2_000, logger: createSilentLogger() }),
    issuer: issuer.issuer,
    audience: issuer.audience,
    algorithms: ['ES256', 'RS256'],
    clockToleranceSeconds: 30,
    scopeClaim: 'scope',
    cacheEntries,
    cacheSeconds: 60,
  });

/** CPU µs per call of `call`, after a warm-up of a tenth as many. */
async function cpuPerCall(call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < N / 10; i++) await call();
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) await call();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / N;
}

const es256 = `Bearer ${await issuer.sign({ subject: 'bench', write: ['*'], read: ['*'], ttlSeconds: 3_600 })}`;
const rs256 = `Bearer ${await new SignJWT({ scope: 'write:* read:*' })
  .setProtectedHeader({ alg: 'RS256', kid: 'rsa' })
  .setIssuer(issuer.issuer)
  .setAudience(issuer.audience)
  .setSubject('bench')
  .setExpirationTime(Math.floor(Date.now() / 1000) + 3_600)
  .sign(rsa.privateKey)}`;
const uncached = verifier(0);
const cached = verifier(10_000);
const rows: Array<[string, number]> = [
  ['ES256 token, signature verified', await cpuPerCall(() => uncached.authenticate(es256))],
  ['RS256 token, signature verified', await cpuPerCall(() => uncached.authenticate(rs256))],
  ['token from the verified-token cache', await cpuPerCall(() => cached.authenticate(es256))],
];
if (process.env.REDIS_URL) {
  const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: true, lazyConnect: false });
  const limiter = createRateLimiter({
    perSecond: 10_000_000,
    burst: 10_000_000,
    burstWindowSeconds: 10,
    redis,
    keyPrefix: `bench:auth:${process.pid}:`,
  });
  rows.push(['rate limit count in Redis (one round trip)', await cpuPerCall(() => limiter.take('bench'))]);
  redis.disconnect();
}
server.close();
process.stdout.write(
  `CPU µs per call in this process (${N} calls each):\n${rows.map(([name, us]) => `  ${us.toFixed(1).padStart(7)}  ${name}`).join('\n')}\n`,
);
