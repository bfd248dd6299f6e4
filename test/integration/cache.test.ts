/**
 * The Redis cache on the real Redis: cache-aside by id with negative entries, versioned list pages, single-flight,
 * and Redis as an accelerator only (unreachable or stalled Redis costs a bounded time and trips the breaker).
 */
import { randomUUID } from 'node:crypto';
import { type AddressInfo, createServer, connect as netConnect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ANONYMOUS } from '#lib/auth';
import { createRecordCache, createRedisClient, type RedisRecordCache, redisPages, withRedisRecords } from '#lib/cache';
import type { RedisConfig } from '#lib/config';
import { createRecordReader, createRecordWriter, type Database } from '#lib/db';
import { createSilentLogger } from '#lib/observability';
import {
  createCursorCodec,
  createIngestService,
  createQueryService,
  createRecordValidator,
  documentFromStore,
  notifyingWrites,
  type QueryService,
  type RecordReader,
  type RecordWriter,
} from '#lib/records';
import {
  getJson,
  postJson,
  startTestApp,
  TEST_CACHE_CONFIG,
  TEST_LIMITS,
  type TestApp,
  testConfig,
  uniqueSource,
  withToken,
} from '../support/app.ts';
import { createTestDatabase } from '../support/database.ts';

const COMMAND_TIMEOUT_MS = 100;

const redisUrl = (): string => {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set; run the suite with scripts/run-tests.ts');
  return url;
};

/** Redis settings as the functions get them, with a fresh key prefix. */
function testRedisConfig(options: { commandTimeoutMs: number }): RedisConfig {
  const config = testConfig({
    REDIS_URL: redisUrl(),
    REDIS_KEY_PREFIX: `test:${randomUUID().slice(0, 8)}:`,
    REDIS_COMMAND_TIMEOUT_MS: String(options.commandTimeoutMs),
  }).redis;
  return defined(config, 'redis config');
}

const parsed = (json: string) => JSON.parse(json) as { id: string; records: unknown[] };

function defined<T>(value: T | undefined, what = 'value'): T {
  if (value === undefined) throw new Error(`${what} is undefined`);
  return value;
}

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = performance.now();
  const result = await work();
  return { result, ms: performance.now() - start };
}

const record = (source: string, extra: Record<string, unknown> = {}) => ({
  source,
  type: 'reading',
  payload: { celsius: 21.5, nested: { ok: true }, list: [1, 'two'] },
  ...extra,
});

const idsOf = (json: Record<string, unknown>): string[] => (json.records as Array<{ id: string }>).map((r) => r.id);

// Our own client, to look at (and clean up) the keys the service writes.
let redis: Redis;
const prefixes = new Set<string>();

beforeAll(() => {
  redis = new Redis(redisUrl(), { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
});

afterAll(async () => {
  for (const prefix of prefixes) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  }
  await redis.quit();
});

const deltaOf = (cache: RedisRecordCache) => {
  const before = cache.stats();
  return () => {
    const after = cache.stats();
    return { hits: after.hits - before.hits, misses: after.misses - before.misses };
  };
};

describe('with Redis: over HTTP', () => {
  let app: TestApp;
  let cache: RedisRecordCache;
  let prefix: string;
  const recordKey = (id: string) => `${prefix}rec:${id}`;

  beforeAll(async () => {
    // List pages live long enough here that a hit is never an expiry accident.
    app = await startTestApp({
      responseTier: false,
      redis: { commandTimeoutMs: COMMAND_TIMEOUT_MS, cache: { listTtlSeconds: 60 } },
    });
    cache = defined(app.cache, 'app.cache');
    prefix = defined(app.redisKeyPrefix, 'app.redisKeyPrefix');
    prefixes.add(prefix);
  });
  afterAll(async () => {
    await app.close();
  });

  describe('by id', () => {
    it('misses first (store read, then cached with a long TTL) and hits second', async () => {
      const posted = await postJson(app, record(uniqueSource()));
      expect(posted.status).toBe(201);
      const [id = ''] = idsOf(posted.json);
      // The write leaves its short-lived "written" marker, never a record or an absence.
      expect(await redis.get(recordKey(id))).toBe('+');

      let delta = deltaOf(cache);
      const first = await getJson(`${app.queryUrl}/data/${id}`);
      expect(first.status).toBe(200);
      expect(delta()).toEqual({ hits: 0, misses: 1 });
      // Stored ready to send: the ETag, `{` and the source (checked against the caller's grants), then the body
      // exactly as served.
      const stored = (await redis.get(recordKey(id))) ?? '';
      const etag = first.headers.get('etag') ?? '';
      const head = `${etag}{${first.json.source}\n`;
      expect(stored.startsWith(head)).toBe(true);
      expect(JSON.parse(stored.slice(head.length))).toEqual(first.json);
      const ttl = await redis.ttl(recordKey(id));
      expect(ttl).toBeGreaterThan(TEST_CACHE_CONFIG.recordTtlSeconds - 60);
      expect(ttl).toBeLessThanOrEqual(TEST_CACHE_CONFIG.recordTtlSeconds);

      delta = deltaOf(cache);
      const second = await getJson(`${app.queryUrl}/data/${id}`);
      expect(second.status).toBe(200);
      expect(second.json).toEqual(first.json);
      expect(delta()).toEqual({ hits: 1, misses: 0 });
    });

    it('serves a hit from Redis, not from PostgreSQL', async () => {
      const [id = ''] = idsOf((await postJson(app, record(uniqueSource()))).json);
      const first = await getJson(`${app.queryUrl}/data/${id}`);
      // Only a read that comes from the cache can see this edit.
      const edited = JSON.stringify({ ...first.json, payload: { from: 'redis' } });
      await redis.set(recordKey(id), `"edited"{${first.json.source}\n${edited}`, 'KEEPTTL');
      const second = await getJson(`${app.queryUrl}/data/${id}`);
      expect(second.json.payload).toEqual({ from: 'redis' });
      expect(second.headers.get('etag')).toBe('"edited"');
      await redis.del(recordKey(id));
    });

    it('keeps ETag and 304 working from a cached record', async () => {
      const [id = ''] = idsOf((await postJson(app, record(uniqueSource()))).json);
      const delta = deltaOf(cache);
      const miss = await fetch(`${app.queryUrl}/data/${id}`, { headers: await withToken() });
      const missBody = await miss.text();
      const hit = await fetch(`${app.queryUrl}/data/${id}`, { headers: await withToken() });
      const hitBody = await hit.text();
      expect(delta()).toEqual({ hits: 1, misses: 1 });
      const etag = miss.headers.get('etag');
      expect(etag).toMatch(/^"[\w-]+"$/);
      // The cached copy is byte-identical to the stored one, so its ETag is the same.
      expect(hitBody).toBe(missBody);
      expect(hit.headers.get('etag')).toBe(etag);
      expect(hit.headers.get('cache-control')).toBe(miss.headers.get('cache-control'));

      const conditional = await fetch(`${app.queryUrl}/data/${id}`, {
        headers: await withToken({ 'if-none-match': etag ?? '' }),
      });
      expect(conditional.status).toBe(304);
      expect(await conditional.text()).toBe('');
      expect(conditional.headers.get('etag')).toBe(etag);
      expect(delta()).toEqual({ hits: 2, misses: 1 });
    });

    it('caches an absence briefly, and a POST of that id clears it before answering', async () => {
      const id = randomUUID();
      const delta = deltaOf(cache);
      expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(404);
      expect(await redis.get(recordKey(id))).toBe('-');
      const ttl = await redis.ttl(recordKey(id));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(TEST_CACHE_CONFIG.negativeTtlSeconds);
      // The second 404 comes from the negative entry.
      expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(404);
      expect(delta()).toEqual({ hits: 1, misses: 1 });

      const posted = await postJson(app, record(uniqueSource(), { id }));
      expect(posted.json.records).toEqual([{ id, status: 'created' }]);
      expect(await redis.get(recordKey(id))).toBe('+');
      const found = await getJson(`${app.queryUrl}/data/${id}`);
      expect(found.status).toBe(200);
      expect(found.json.id).toBe(id);
    });

    it('clears the negative entries of every id a batch POST creates', async () => {
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      for (const id of ids) expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(404);
      expect(await redis.mget(...ids.map(recordKey))).toEqual(['-', '-', '-']);

      const source = uniqueSource();
      const posted = await postJson(app, { records: ids.map((id) => record(source, { id })) });
      expect(posted.status).toBe(201);
      for (const id of ids) {
        const found = await getJson(`${app.queryUrl}/data/${id}`);
        expect(found.status).toBe(200);
        expect(found.json.id).toBe(id);
      }
    });

    it('clears the negative entry on a write with an Idempotency-Key too', async () => {
      const id = randomUUID();
      expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(404);
      const posted = await postJson(app, record(uniqueSource(), { id }), { 'idempotency-key': randomUUID() });
      expect(posted.status).toBe(201);
      expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(200);
    });

    it('a hit ratio of 90 % in 200 GETs over 20 ids (one miss per id)', async () => {
      const source = uniqueSource();
      const posted = await postJson(app, { records: Array.from({ length: 20 }, () => record(source)) });
      const ids = idsOf(posted.json);
      expect(ids).toHaveLength(20);
      const delta = deltaOf(cache);
      for (let i = 0; i < 200; i++) {
        const id = ids[i % ids.length] ?? '';
        expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(200);
      }
      const { hits, misses } = delta();
      console.log(`cache hit ratio over 200 GETs of 20 ids: ${hits}/${hits + misses} = ${hits / (hits + misses)}`);
      expect({ hits, misses }).toEqual({ hits: 180, misses: 20 });
    }, 30_000);
  });

  describe('list pages', () => {
    it('misses, then hits; a write to the source shows at once; other sources stay cached', async () => {
      const a = uniqueSource('cache-a');
      const b = uniqueSource('cache-b');
      await postJson(app, record(a));
      await postJson(app, record(b));
      const listA = `${app.queryUrl}/data?source=${a}`;
      const listB = `${app.queryUrl}/data?source=${b}`;

      let delta = deltaOf(cache);
      const a1 = await getJson(listA);
      const a2 = await getJson(listA);
      const b1 = await getJson(listB);
      const b2 = await getJson(listB);
      expect(delta()).toEqual({ hits: 2, misses: 2 });
      expect(a2.json).toEqual(a1.json);
      expect(b2.json).toEqual(b1.json);
      expect(a1.json.records).toHaveLength(1);

      const [created = ''] = idsOf((await postJson(app, record(a))).json);
      delta = deltaOf(cache);
      const a3 = await getJson(listA);
      expect(idsOf(a3.json)).toContain(created);
      expect(a3.json.records).toHaveLength(2);
      const b3 = await getJson(listB);
      expect(b3.json).toEqual(b1.json);
      expect(delta()).toEqual({ hits: 1, misses: 1 });

      // And the new page is cached in turn.
      const a4 = await getJson(listA);
      expect(a4.json).toEqual(a3.json);
      expect(delta()).toEqual({ hits: 2, misses: 1 });
    });

    it('invalidates a page without a source filter on a write to any source', async () => {
      const type = `t${randomUUID().slice(0, 8)}`;
      await postJson(app, record(uniqueSource(), { type }));
      const url = `${app.queryUrl}/data?type=${type}&limit=10`;
      let delta = deltaOf(cache);
      await getJson(url);
      const cached = await getJson(url);
      expect(delta()).toEqual({ hits: 1, misses: 1 });
      expect(cached.json.records).toHaveLength(1);

      const [created = ''] = idsOf((await postJson(app, record(uniqueSource(), { type }))).json);
      delta = deltaOf(cache);
      const fresh = await getJson(url);
      expect(delta()).toEqual({ hits: 0, misses: 1 });
      expect(idsOf(fresh.json)).toContain(created);
    });

    it('caches each page of a cursor walk under its own key', async () => {
      const source = uniqueSource();
      await postJson(app, { records: Array.from({ length: 5 }, () => record(source)) });
      const first = await getJson(`${app.queryUrl}/data?source=${source}&limit=3`);
      const cursor = String(first.json.next_cursor);
      const nextUrl = `${app.queryUrl}/data?source=${source}&limit=3&cursor=${encodeURIComponent(cursor)}`;
      const delta = deltaOf(cache);
      const second = await getJson(nextUrl);
      const again = await getJson(nextUrl);
      expect(delta()).toEqual({ hits: 1, misses: 1 });
      expect(again.json).toEqual(second.json);
      expect([...idsOf(first.json), ...idsOf(second.json)]).toHaveLength(5);
    });
  });
});

describe('with Redis: in process (counting store reads)', () => {
  let db: Database;
  let cache: RedisRecordCache;
  let closeRedis: () => void;
  let writer: RecordWriter;
  let reader: RecordReader;
  const reads = { findById: 0, list: 0 };
  let query: QueryService;
  const ingest = () => {
    const service = createIngestService({
      writer: notifyingWrites(writer, cache),
      validator: createRecordValidator(TEST_LIMITS),
      deadlineMs: 10_000,
    });
    return (request: { body: unknown }) => service.ingest({ ...request, caller: ANONYMOUS });
  };
  /** The query side's chain as functions/query/app.ts assembles it, over `store`. */
  const queryOver = (store: RecordReader) =>
    createQueryService({
      records: withRedisRecords(cache, documentFromStore(store)),
      pages: redisPages(cache),
      reader: store,
      cursors: createCursorCodec('test-cursor-secret-0123456789'),
      maxPageBytes: 4 * 1024 * 1024,
    });

  beforeAll(async () => {
    db = createTestDatabase();
    writer = createRecordWriter({ db, idempotencyTtlHours: 24 });
    reader = createRecordReader(db);
    const counting: RecordReader = {
      findById: (id) => {
        reads.findById++;
        return reader.findById(id);
      },
      list: (q) => {
        reads.list++;
        return reader.list(q);
      },
    };
    const config = testRedisConfig({ commandTimeoutMs: COMMAND_TIMEOUT_MS });
    prefixes.add(config.keyPrefix);
    const logger = createSilentLogger();
    const client = createRedisClient(config, logger);
    await waitFor(() => client.status === 'ready', 5_000, 'redis ready');
    cache = createRecordCache({ redis: client, config: TEST_CACHE_CONFIG, keyPrefix: config.keyPrefix, logger });
    closeRedis = () => {
      cache.close();
      client.disconnect();
    };
    query = queryOver(counting);
  });
  afterAll(async () => {
    closeRedis();
    await db.destroy();
  });

  it('20 concurrent GETs of one uncached id read PostgreSQL once, then not at all', async () => {
    const source = uniqueSource();
    const [written] = await writer.insert([
      {
        id: randomUUID(),
        source,
        type: 'reading',
        timestamp: new Date().toISOString(),
        payload: { n: 1 },
        payloadJson: '{"n":1}',
      },
    ]);
    const id = defined(written).id;
    reads.findById = 0;
    const results = await Promise.all(Array.from({ length: 20 }, () => query.getById(id, ANONYMOUS)));
    expect(reads.findById).toBe(1);
    for (const result of results) expect(parsed(result.json).id).toBe(id);

    const again = await Promise.all(Array.from({ length: 20 }, () => query.getById(id, ANONYMOUS)));
    expect(reads.findById).toBe(1);
    expect(again).toEqual(results);
  });

  it('20 concurrent GETs of one absent id read PostgreSQL once', async () => {
    const id = randomUUID();
    reads.findById = 0;
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => query.getById(id, ANONYMOUS)));
    expect(reads.findById).toBe(1);
    expect(settled.every((s) => s.status === 'rejected' && /No record/.test(String(s.reason)))).toBe(true);
  });

  it('20 concurrent list requests for one page read PostgreSQL once', async () => {
    const source = uniqueSource();
    await ingest()({ body: { records: [record(source), record(source)] } });
    reads.list = 0;
    const pages = await Promise.all(Array.from({ length: 20 }, () => query.list({ source }, ANONYMOUS)));
    expect(reads.list).toBe(1);
    for (const page of pages) expect(parsed(page.json).records).toHaveLength(2);
  });

  /**
   * A reader whose PostgreSQL read ("absent") happened before a write committed, but whose negative entry reaches
   * Redis after the write's invalidation, leaves a '-' that hides the acknowledged record for the negative TTL.
   */
  describe('a lookup racing a write of the same id', () => {
    const gatedQuery = () => {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let readDone = false;
      const store: RecordReader = {
        ...reader,
        findById: async (id) => {
          const found = await reader.findById(id);
          readDone = true;
          await gate;
          return found;
        },
      };
      return {
        query: queryOver(store),
        release,
        readDone: () => readDone,
      };
    };

    it('a read that starts after the write was acknowledged finds the record (stale negative entry)', async () => {
      const id = randomUUID();
      const slow = gatedQuery();
      const early = slow.query.getById(id, ANONYMOUS).catch((error: unknown) => error);
      await waitFor(slow.readDone, 5_000, 'the early read');
      // The write commits and clears the id's cache entry, then the client has its 201.
      await ingest()({ body: record(uniqueSource(), { id }) });
      slow.release();
      await early; // began before the write: either answer is fine

      expect(parsed((await query.getById(id, ANONYMOUS)).json).id).toBe(id);
    });

    it('a read that starts after the write was acknowledged finds the record (joined stale flight)', async () => {
      const id = randomUUID();
      const slow = gatedQuery();
      const early = slow.query.getById(id, ANONYMOUS).catch((error: unknown) => error);
      await waitFor(slow.readDone, 5_000, 'the early read');
      await ingest()({ body: record(uniqueSource(), { id }) });
      const late = slow.query.getById(id, ANONYMOUS); // same process as the early read, started after the 201
      slow.release();
      await early;

      expect(parsed((await late).json).id).toBe(id);
    });
  });
});

describe('with Redis: a client still connecting', () => {
  /**
   * A function serves requests as soon as it listens, while ioredis may still be connecting (cold start under
   * load). Those commands fail at once (no offline queue) without waiting for anything, so they protect nothing by
   * counting against the breaker; counted, they open it and send every read to PostgreSQL for `breakerResetMs`.
   */
  it('does not open the breaker on a healthy Redis because of lookups sent before the connection was ready', async () => {
    const config = testRedisConfig({ commandTimeoutMs: COMMAND_TIMEOUT_MS });
    prefixes.add(config.keyPrefix);
    const id = randomUUID();
    await redis.set(`${config.keyPrefix}rec:${id}`, '-', 'EX', 60);
    const logger = createSilentLogger();
    const client = createRedisClient(config, logger);
    const cache = createRecordCache({
      redis: client,
      config: { ...TEST_CACHE_CONFIG, breakerResetMs: 60_000 },
      keyPrefix: config.keyPrefix,
      logger,
    });
    try {
      // A burst of requests in the first milliseconds after start.
      await Promise.all(Array.from({ length: 10 }, () => cache.getRecord(id)));
      await waitFor(() => client.status === 'ready', 5_000, 'redis ready');
      expect(await cache.getRecord(id)).toEqual({ kind: 'absent' });
      expect(cache.stats().breaker).toBe('closed');
    } finally {
      cache.close();
      client.disconnect();
    }
  });
});

describe('with Redis unreachable', () => {
  let app: TestApp;
  let cache: RedisRecordCache;
  beforeAll(async () => {
    app = await startTestApp({
      responseTier: false,
      redis: {
        url: 'redis://127.0.0.1:1',
        commandTimeoutMs: COMMAND_TIMEOUT_MS,
        cache: { breakerFailureThreshold: 5, breakerResetMs: 60_000 },
      },
    });
    cache = defined(app.cache, 'app.cache');
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers writes and reads from PostgreSQL, skipping a never-connected Redis at no cost', async () => {
    const source = uniqueSource();
    const write = await timed(() => postJson(app, { records: [record(source), record(source)] }));
    expect(write.result.status).toBe(201);
    expect(write.ms).toBeLessThan(1_000);
    const [id = '', other = ''] = idsOf(write.result.json);

    // A client that is not connected is skipped before any command is sent: no timeout is waited out, and
    // (unlike a connected Redis that stops answering, see the stalled-Redis case) the breaker is not needed.
    for (let i = 0; i < 20; i++) {
      const lookup = await timed(() => cache.getRecord(id));
      expect(lookup.result).toEqual({ kind: 'miss' });
      // Below one command timeout: no timeout was waited out (margin for a loaded CI machine).
      expect(lookup.ms).toBeLessThan(COMMAND_TIMEOUT_MS * 0.8);
    }

    for (const target of [id, other]) {
      const read = await timed(() => getJson(`${app.queryUrl}/data/${target}`));
      expect(read.result.status).toBe(200);
      expect(read.result.json).toMatchObject({ id: target, source });
      expect(read.ms).toBeLessThan(2 * COMMAND_TIMEOUT_MS + 300);
    }
    const list = await getJson(`${app.queryUrl}/data?source=${source}`);
    expect(list.status).toBe(200);
    expect(list.json.records).toHaveLength(2);
    expect((await getJson(`${app.queryUrl}/data/${randomUUID()}`)).status).toBe(404);
    expect(cache.stats().errorsOrSkips).toBeGreaterThan(20);
  });

  it('keeps 304 working without Redis', async () => {
    const [id = ''] = idsOf((await postJson(app, record(uniqueSource()))).json);
    const first = await fetch(`${app.queryUrl}/data/${id}`, { headers: await withToken() });
    const etag = first.headers.get('etag') ?? '';
    expect(first.status).toBe(200);
    const conditional = await fetch(`${app.queryUrl}/data/${id}`, {
      headers: await withToken({ 'if-none-match': etag }),
    });
    expect(conditional.status).toBe(304);
  });
});

/** A TCP proxy to the real Redis that can hold back Redis's replies (kept in order) to play a stalled server. */
async function startStallingProxy(target: URL) {
  let stalled = false;
  const held: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = netConnect(Number(target.port || 6379), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (data) => upstream.write(data));
    upstream.on('data', (data) => {
      if (stalled) held.push(() => client.write(data));
      else client.write(data);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const write of held.splice(0)) write();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('with Redis stalled (connected, not answering)', () => {
  let app: TestApp;
  let cache: RedisRecordCache;
  let proxy: Awaited<ReturnType<typeof startStallingProxy>>;
  const RESET_MS = 1_000;
  beforeAll(async () => {
    proxy = await startStallingProxy(new URL(redisUrl()));
    app = await startTestApp({
      responseTier: false,
      redis: {
        url: proxy.url,
        commandTimeoutMs: COMMAND_TIMEOUT_MS,
        cache: { breakerFailureThreshold: 3, breakerResetMs: RESET_MS },
      },
    });
    cache = defined(app.cache, 'app.cache');
    prefixes.add(defined(app.redisKeyPrefix));
  });
  afterAll(async () => {
    proxy.resume();
    await app.close();
    await proxy.close();
  });

  it('costs each lookup about one command timeout, opens the breaker, and resumes hits when Redis answers', async () => {
    const [id = ''] = idsOf((await postJson(app, record(uniqueSource()))).json);
    await getJson(`${app.queryUrl}/data/${id}`);
    let delta = deltaOf(cache);
    expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(200);
    expect(delta()).toEqual({ hits: 1, misses: 0 });

    proxy.stall();
    // A read while the breaker is still closed: the lookup times out, PostgreSQL answers.
    const read = await timed(() => getJson(`${app.queryUrl}/data/${id}`));
    expect(read.result.status).toBe(200);
    expect(read.result.json.id).toBe(id);
    expect(read.ms).toBeLessThan(2 * 2 * COMMAND_TIMEOUT_MS + 300); // lookup + write-back, each timed out

    while (cache.stats().breaker === 'closed') {
      const lookup = await timed(() => cache.getRecord(id));
      expect(lookup.result).toEqual({ kind: 'miss' });
      expect(lookup.ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS * 0.8);
      // One timeout, not many (generous for a loaded machine; an unbounded wait would take seconds).
      expect(lookup.ms).toBeLessThan(5 * COMMAND_TIMEOUT_MS);
    }
    expect(cache.stats().breaker).toBe('open');
    for (let i = 0; i < 20; i++) {
      const lookup = await timed(() => cache.getRecord(id));
      // Below one command timeout: no timeout was waited out (margin for a loaded CI machine).
      expect(lookup.ms).toBeLessThan(COMMAND_TIMEOUT_MS * 0.8);
    }
    const fast = await timed(() => getJson(`${app.queryUrl}/data/${id}`));
    expect(fast.result.status).toBe(200);
    // With the breaker closed this read would wait out two timeouts (lookup and write-back): 200 ms.
    expect(fast.ms).toBeLessThan(2 * COMMAND_TIMEOUT_MS);

    proxy.resume();
    await new Promise((resolve) => setTimeout(resolve, RESET_MS + 50));
    delta = deltaOf(cache);
    expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(200);
    expect(cache.stats().breaker).toBe('closed');
    expect(delta()).toEqual({ hits: 1, misses: 0 });
  }, 20_000);
});
