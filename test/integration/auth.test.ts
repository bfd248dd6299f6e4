/**
 * Access control over real HTTP: both functions built by their composition roots, trusting a test issuer whose
 * JWKS is served on loopback; tokens signed with its key (and with others, to be refused).
 */
import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import { createRateLimiter } from '#lib/auth';
import { newIssuerKey } from '../../scripts/local-issuer.ts';
import { getJson, postJson, startTestApp, type TestApp, uniqueSource } from '../support/app.ts';
import { type TestIssuer, testIssuer } from '../support/auth.ts';

const record = (source: string, extra: Record<string, unknown> = {}) => ({
  source,
  type: 'reading',
  payload: { n: 1 },
  ...extra,
});
const asBearer = (token: string) => ({ authorization: `Bearer ${token}` });
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

let issuer: TestIssuer;
let app: TestApp;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  // The issuer whose all-access token postJson and getJson send when given no Authorization (this file's own).
  issuer = await testIssuer();
  app = await startTestApp({ auth: issuer, env: { AUTH_JWKS_COOLDOWN_SECONDS: '1' } });
});

afterAll(async () => {
  await app.close();
});

/** GET and POST with `headers`, both expected to be refused with 401 and this RFC 6750 error code. */
async function expectUnauthorized(headers: Record<string, string>, error: string | undefined): Promise<void> {
  for (const answer of [
    await postJson(app, record(uniqueSource()), headers),
    await getJson(`${app.queryUrl}/data/${randomUUID()}`, headers),
  ]) {
    expect({ status: answer.status, type: answer.json.type }).toEqual({
      status: 401,
      type: 'https://data-service.dev/problems/unauthorized',
    });
    const challenge = answer.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer realm="data-service"/);
    if (error === undefined) expect(challenge).not.toContain('error=');
    else expect(challenge).toContain(`error="${error}"`);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
  }
}

describe('bearer tokens', () => {
  it('refuses a request without credentials with 401 and a challenge without an error code', async () => {
    await expectUnauthorized({ authorization: '' }, undefined);
    await expectUnauthorized({ authorization: 'Basic dXNlcjpwYXNz' }, undefined);
  });

  it('refuses a malformed Authorization header (invalid_request) and a token that is no JWT (invalid_token)', async () => {
    await expectUnauthorized({ authorization: 'Bearer' }, 'invalid_request');
    await expectUnauthorized({ authorization: 'Bearer a b' }, 'invalid_request');
    await expectUnauthorized({ authorization: `Bearer ${'x'.repeat(9000)}` }, 'invalid_request');
    await expectUnauthorized(asBearer('not-a-jwt'), 'invalid_token');
    await expectUnauthorized(asBearer('a.b.c'), 'invalid_token');
  });

  it.each([
    ['expired', { ttlSeconds: -120 }],
    ['not yet valid', { notBefore: now() + 600 }],
    ['for another audience', { audience: 'another-service' }],
    ['from another issuer', { issuer: 'https://evil.example/' }],
    ['without a subject', { subject: '' }],
  ])('refuses a token %s with 401 invalid_token', async (_, request) => {
    await expectUnauthorized(asBearer(await issuer.sign({ write: ['*'], read: ['*'], ...request })), 'invalid_token');
  });

  it('accepts a token within the clock tolerance of its exp and nbf', async () => {
    const lenient = await issuer.sign({ write: ['*'], ttlSeconds: -10, notBefore: now() + 10 });
    expect((await postJson(app, record(uniqueSource()), asBearer(lenient))).status).toBe(201);
  });

  it('refuses alg none, an HMAC signed with the public key, and a tampered signature or payload', async () => {
    const valid = await issuer.sign({ write: ['*'], read: ['*'] });
    const [header = '', payload = '', signature = ''] = valid.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`;
    await expectUnauthorized(asBearer(unsigned), 'invalid_token');
    // The classic confusion: HS256 keyed with the issuer's public key, which anyone can fetch.
    const publicKey = JSON.stringify(issuer.jwks.keys[0]);
    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: issuer.jwks.keys[0]?.kid })}.${payload}`;
    const hs = `${hsInput}.${createHmac('sha256', publicKey).update(hsInput).digest('base64url')}`;
    await expectUnauthorized(asBearer(hs), 'invalid_token');
    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    await expectUnauthorized(asBearer(`${header}.${payload}.${flipped}`), 'invalid_token');
    const widened = b64({ ...claims, sub: 'someone-else' });
    await expectUnauthorized(asBearer(`${header}.${widened}.${signature}`), 'invalid_token');
  });

  it('fetches the key set again for an unknown kid: a rotated-in key is accepted, a key never published is not', async () => {
    const rotated = await newIssuerKey();
    const { d: _private, ...rotatedPublic } = rotated;
    const sign = async (key: typeof rotated) =>
      new SignJWT({ scope: 'write:*' })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid ?? '' })
        .setIssuer(issuer.issuer)
        .setAudience(issuer.audience)
        .setSubject('rotated')
        .setExpirationTime(now() + 600)
        .sign(await importJWK(key, 'ES256'));
    // Not published yet: refused (the key set is fetched, and still lacks it).
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the 1 s cooldown of this app
    await expectUnauthorized(asBearer(await sign(rotated)), 'invalid_token');
    issuer.publish({ keys: [...issuer.jwks.keys, { ...rotatedPublic, alg: 'ES256', use: 'sig' }] });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const fetched = issuer.fetches();
    expect((await postJson(app, record(uniqueSource()), asBearer(await sign(rotated)))).status).toBe(201);
    expect(issuer.fetches()).toBe(fetched + 1);
    // A stream of tokens with made-up kids costs the issuer at most one fetch per cooldown.
    const stranger = await newIssuerKey();
    const before = issuer.fetches();
    const strangers = await Promise.all(
      Array.from({ length: 20 }, async () => (await postJson(app, record('x'), asBearer(await sign(stranger)))).status),
    );
    expect(strangers.every((status) => status === 401)).toBe(true);
    expect(issuer.fetches() - before).toBeLessThanOrEqual(1);
    issuer.publish(undefined);
  });

  it('answers 503 with Retry-After, not 401 or 500, while the key set cannot be fetched', async () => {
    const unreachable = await startTestApp({
      auth: { ...issuer, jwksUrl: 'http://127.0.0.1:9/jwks.json' },
      env: { AUTH_JWKS_TIMEOUT_MS: '500' },
    });
    try {
      const token = await issuer.sign({ write: ['*'], read: ['*'] });
      for (const answer of [
        await postJson(unreachable, record(uniqueSource()), asBearer(token)),
        await getJson(`${unreachable.queryUrl}/data/${randomUUID()}`, asBearer(token)),
      ]) {
        expect({ status: answer.status, type: answer.json.type }).toEqual({
          status: 503,
          type: 'https://data-service.dev/problems/dependency-unavailable',
        });
        expect(answer.headers.get('retry-after')).toBe('5');
      }
    } finally {
      await unreachable.close();
    }
  });

  it('verifies RS256 tokens too when the issuer publishes an RSA key', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
    issuer.publish({ keys: [...issuer.jwks.keys, jwk] });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const token = await new SignJWT({ scope: 'write:*' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setSubject('rsa-caller')
      .setExpirationTime(now() + 600)
      .sign(privateKey);
    expect((await postJson(app, record(uniqueSource()), asBearer(token))).status).toBe(201);
    issuer.publish(undefined);
  });
});

describe('grants per source', () => {
  const token = (write: string[], read: string[], subject = 'scoped') =>
    issuer.sign({ subject, write, read }).then(asBearer);

  it('writes only to sources the token grants: names, prefixes and *', async () => {
    const prefix = `${uniqueSource('grant')}-`;
    const headers = await token([`${prefix}*`, 'exact.name'], []);
    expect((await postJson(app, record(`${prefix}a`), headers)).status).toBe(201);
    expect((await postJson(app, record('exact.name'), headers)).status).toBe(201);
    const refused = await postJson(app, record(`other-${prefix}`), headers);
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({
      type: 'https://data-service.dev/problems/forbidden',
      errors: [{ pointer: '/source', detail: `this token may not write to other-${prefix}` }],
    });
    expect(refused.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope"');
    // A read grant is not a write grant.
    expect((await postJson(app, record(`${prefix}a`), await token([], ['*']))).status).toBe(403);
  });

  it('refuses a whole batch with 403 naming /records/3/source when record 3 is forbidden, storing nothing', async () => {
    const allowed = uniqueSource('allowed');
    const headers = await token([allowed], [allowed]);
    const ids = Array.from({ length: 5 }, () => randomUUID());
    const body = { records: ids.map((id, i) => record(i === 3 ? 'forbidden.source' : allowed, { id })) };
    const refused = await postJson(app, body, headers);
    expect(refused.status).toBe(403);
    expect(refused.json.errors).toEqual([
      { pointer: '/records/3/source', detail: 'this token may not write to forbidden.source' },
    ]);
    const listed = await getJson(`${app.queryUrl}/data?source=${allowed}`, headers);
    expect(listed.json.records).toEqual([]);
  });

  it('answers a forbidden id exactly as an absent one: 404 with the same problem', async () => {
    const hidden = uniqueSource('hidden');
    const [{ id } = { id: '' }] = (await postJson(app, record(hidden))).json.records as Array<{ id: string }>;
    const outsider = await token([], ['somewhere-else.*']);
    const forbidden = await getJson(`${app.queryUrl}/data/${id}`, outsider);
    const absentId = `${id.slice(0, 30)}${id.slice(30) === 'ffffff' ? '000000' : 'ffffff'}`;
    const absent = await getJson(`${app.queryUrl}/data/${absentId}`, outsider);
    const comparable = (answer: typeof forbidden, which: string) => ({
      status: answer.status,
      headers: Object.fromEntries(
        [...answer.headers].filter(([name]) => !['date', 'x-request-id', 'content-length'].includes(name)),
      ),
      json: { ...answer.json, detail: String(answer.json.detail).replace(which, 'ID'), instance: '', request_id: '' },
    });
    expect(comparable(forbidden, id)).toEqual(comparable(absent, absentId));
    expect(forbidden.status).toBe(404);
    // Cached in every tier by now (the owner read it): still hidden, and still there for its owner.
    expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(200);
    expect((await getJson(`${app.queryUrl}/data/${id}`, outsider)).status).toBe(404);
    // If-None-Match with the record's real ETag reveals nothing either.
    const etag = (await getJson(`${app.queryUrl}/data/${id}`)).headers.get('etag') ?? '';
    expect((await getJson(`${app.queryUrl}/data/${id}`, { ...outsider, 'if-none-match': etag })).status).toBe(404);
  });

  it('lists only a readable source; without source only with read:*', async () => {
    const source = uniqueSource('listed');
    await postJson(app, record(source));
    const reader = await token([], [source]);
    expect((await getJson(`${app.queryUrl}/data?source=${source}`, reader)).json.records).toHaveLength(1);
    const other = await getJson(`${app.queryUrl}/data?source=${source}x`, reader);
    expect(other.status).toBe(403);
    expect(other.json.errors).toEqual([{ pointer: '/source', detail: 'is not readable with this token' }]);
    const bare = await getJson(`${app.queryUrl}/data?limit=1`, reader);
    expect(bare.status).toBe(403);
    expect(String(bare.json.detail)).toContain('read:*');
    expect((await getJson(`${app.queryUrl}/data?limit=1`, await token([], ['*']))).status).toBe(200);
  });

  it('marks answers private to their caller', async () => {
    const source = uniqueSource();
    const [{ id } = { id: '' }] = (await postJson(app, record(source))).json.records as Array<{ id: string }>;
    const one = await getJson(`${app.queryUrl}/data/${id}`);
    expect(one.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
    expect(one.headers.get('vary')).toBe('Authorization');
    const page = await getJson(`${app.queryUrl}/data?source=${source}`);
    expect(page.headers.get('cache-control')).toBe('private, no-cache');
    expect(page.headers.get('vary')).toBe('Authorization');
  });
});

describe('per-caller state', () => {
  const caller = (subject: string) => issuer.sign({ subject, write: ['*'], read: ['*'] }).then(asBearer);

  it('keeps Idempotency-Keys per caller: another caller with the same key neither replays nor is refused', async () => {
    const key = 'batch-0001';
    const source = uniqueSource();
    const alice = await caller(`alice-${randomUUID()}`);
    const bob = await caller(`bob-${randomUUID()}`);
    const first = await postJson(app, record(source, { payload: { who: 'alice' } }), {
      ...alice,
      'idempotency-key': key,
    });
    expect(first.status).toBe(201);
    const other = await postJson(app, record(source, { payload: { who: 'bob' } }), { ...bob, 'idempotency-key': key });
    expect(other.status).toBe(201);
    expect(other.json).not.toEqual(first.json);
    const replay = await postJson(app, record(source, { payload: { who: 'alice' } }), {
      ...alice,
      'idempotency-key': key,
    });
    expect(replay.json).toEqual(first.json);
  });

  it("refuses one caller's cursor from another", async () => {
    const source = uniqueSource();
    await postJson(app, { records: [record(source), record(source), record(source)] });
    const alice = await caller(`alice-${randomUUID()}`);
    const page = await getJson(`${app.queryUrl}/data?source=${source}&limit=1`, alice);
    const cursor = String(page.json.next_cursor);
    expect((await getJson(`${app.queryUrl}/data?source=${source}&limit=1&cursor=${cursor}`, alice)).status).toBe(200);
    const stolen = await getJson(
      `${app.queryUrl}/data?source=${source}&limit=1&cursor=${cursor}`,
      await caller(`mallory-${randomUUID()}`),
    );
    expect(stolen.status).toBe(400);
    expect(stolen.json.type).toBe('https://data-service.dev/problems/invalid-cursor');
  });
});

describe('rate limit per caller', () => {
  let limited: TestApp;
  beforeAll(async () => {
    limited = await startTestApp({
      auth: issuer,
      redis: true,
      env: { RATE_LIMIT_PER_SECOND: '5', RATE_LIMIT_BURST: '8', RATE_LIMIT_BURST_WINDOW_SECONDS: '60' },
    });
  });
  afterAll(async () => {
    await limited.close();
  });

  it('answers 429 with Retry-After and the RateLimit fields past the burst, counted across both functions', async () => {
    const headers = asBearer(await issuer.sign({ subject: `busy-${randomUUID()}`, write: ['*'], read: ['*'] }));
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await postJson(limited, record(uniqueSource()), headers));
    for (let i = 0; i < 5; i++) answers.push(await getJson(`${limited.queryUrl}/data/${randomUUID()}`, headers));
    const statuses = answers.map((a) => a.status);
    expect(statuses.slice(0, 8)).toEqual([201, 201, 201, 201, 201, 404, 404, 404]);
    expect(statuses.slice(8)).toEqual([429, 429]);
    const refused = answers[9];
    expect(refused?.json.type).toBe('https://data-service.dev/problems/rate-limited');
    expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused?.headers.get('ratelimit-policy')).toBe('"per-caller";q=5;w=1');
    expect(refused?.headers.get('ratelimit')).toMatch(/^"per-caller";r=0;t=\d+$/);
    expect(answers[0]?.headers.get('ratelimit')).toMatch(/^"per-caller";r=4;t=1$/);
    // Another caller is not affected.
    const other = asBearer(await issuer.sign({ subject: `calm-${randomUUID()}`, write: ['*'] }));
    expect((await postJson(limited, record(uniqueSource()), other)).status).toBe(201);
  });

  it('still limits each caller in each process while Redis is unreachable', async () => {
    const offline = await startTestApp({
      auth: issuer,
      redis: { url: 'redis://127.0.0.1:9' },
      env: { RATE_LIMIT_PER_SECOND: '3', RATE_LIMIT_BURST: '3' },
    });
    try {
      const headers = asBearer(await issuer.sign({ subject: `offline-${randomUUID()}`, write: ['*'] }));
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await postJson(offline, record(uniqueSource()), headers)).status);
      expect(statuses).toEqual([201, 201, 201, 429, 429]);
    } finally {
      await offline.close();
    }
  });

  it('never refuses 200 requests at once of one caller with the default limit', async () => {
    const generous = await startTestApp({ auth: issuer, redis: true, env: { RATE_LIMIT_PER_SECOND: '1000' } });
    try {
      const headers = asBearer(await issuer.sign({ subject: `bursty-${randomUUID()}`, read: ['*'] }));
      const answers = await Promise.all(
        Array.from({ length: 200 }, () => getJson(`${generous.queryUrl}/data/${randomUUID()}`, headers)),
      );
      expect(answers.filter((a) => a.status !== 404)).toEqual([]);
    } finally {
      await generous.close();
    }
  });

  it("takes a busy caller's points in leases: few Redis round trips, never more admitted than the limit", async () => {
    const redis = new Redis(String(process.env.REDIS_URL));
    const evalCalls = async () => {
      const stats = await redis.info('commandstats');
      return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    // Two processes' limiters over one Redis count, as two pods do.
    const options = {
      perSecond: 1000,
      burst: 1000,
      burstWindowSeconds: 10,
      redis,
      keyPrefix: `rl-test:${randomUUID()}:`,
    };
    const pods = [createRateLimiter(options), createRateLimiter(options)];
    try {
      const before = await evalCalls();
      let admitted = 0;
      let refused = 0;
      const remaining: number[] = [];
      for (let i = 0; i < 1100; i++) {
        try {
          const headers = await (pods[i % 2] as (typeof pods)[number]).take('busy');
          admitted++;
          remaining.push(Number(/;r=(\d+);/.exec(headers.ratelimit ?? '')?.[1]));
        } catch {
          refused++;
        }
      }
      const calls = (await evalCalls()) - before;
      // Leased but unused points are the only error: at most one lease (1000 / 20) per process, never an excess.
      expect(admitted).toBeLessThanOrEqual(1000);
      expect(admitted).toBeGreaterThanOrEqual(1000 - 2 * 50);
      expect(refused).toBe(1100 - admitted);
      expect(calls).toBeLessThan(1100 / 5);
      expect(remaining.every((r) => r >= 0 && r <= 999)).toBe(true);
    } finally {
      redis.disconnect();
    }
  });

  it('refills one lease at a time for a caller: a burst of 200 at once costs a few round trips, none refused', async () => {
    const redis = new Redis(String(process.env.REDIS_URL));
    const evalCalls = async () => {
      const stats = await redis.info('commandstats');
      return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const limiter = createRateLimiter({
      perSecond: 1000,
      burst: 2000,
      burstWindowSeconds: 10,
      redis,
      keyPrefix: `rl-test:${randomUUID()}:`,
    });
    try {
      // Warm: the caller's first lease is one point, its next ones sized by its rate.
      for (let i = 0; i < 20; i++) await limiter.take('burst');
      const before = await evalCalls();
      const answers = await Promise.allSettled(Array.from({ length: 200 }, () => limiter.take('burst')));
      const calls = (await evalCalls()) - before;
      expect(answers.filter((a) => a.status === 'rejected')).toEqual([]);
      // One refill in flight at a time, each at most 50 points: at least 4, and far fewer than one per request.
      expect(calls).toBeGreaterThanOrEqual(4);
      expect(calls).toBeLessThanOrEqual(20);
    } finally {
      redis.disconnect();
    }
  });
});
