/**
 * Lists bounded in bytes (issue 12): with LIST_MAX_BYTES a page ends early, with next_cursor, once its records
 * hold that many bytes of JSON (a record larger than that alone gets a page of its own); a walk by next_cursor
 * still yields every record once, in order. With CACHE_VALUE_MAX_BYTES nothing larger reaches Redis: such pages
 * and records are served, just not cached.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { createRecordReader } from '#lib/db';
import { pageOf } from '#lib/records';
import { getJson, isoAgo, postJson, startTestApp, type TestApp, uniqueSource } from '../support/app.ts';

const MAX_BYTES = 20_000;
const CACHE_MAX_BYTES = 8_192;

let app: TestApp;
let redis: Redis;
beforeAll(async () => {
  app = await startTestApp({
    redis: true,
    env: { LIST_MAX_BYTES: String(MAX_BYTES), CACHE_VALUE_MAX_BYTES: String(CACHE_MAX_BYTES) },
  });
  redis = new Redis(process.env.REDIS_URL ?? '', { lazyConnect: true });
  await redis.connect();
});
afterAll(async () => {
  redis?.disconnect();
  await app?.close();
});

interface Page {
  readonly ids: string[];
  readonly nextCursor: string | null;
}

async function page(parameters: Record<string, string>): Promise<Page> {
  const answer = await getJson(`${app.queryUrl}/data?${new URLSearchParams(parameters)}`);
  expect(answer.status).toBe(200);
  return {
    ids: (answer.json.records as Array<{ id: string }>).map((r) => r.id),
    nextCursor: answer.json.next_cursor as string | null,
  };
}

/** Stores records of about the given payload sizes in bytes (UTF-8, not all ASCII), newest last; pairs share a timestamp. */
async function storeSized(source: string, sizes: readonly number[]): Promise<void> {
  const records = sizes.map((size, i) => ({
    source,
    type: 'sized',
    timestamp: isoAgo(60_000 + Math.floor((sizes.length - i) / 2) * 1_000),
    payload: { i, fill: 'é'.repeat(Math.floor(size / 4)) + 'x'.repeat(size - 2 * Math.floor(size / 4)) },
  }));
  // Ten records a request keep each body under the test app's 1 MiB limit.
  for (let at = 0; at < records.length; at += 10) {
    expect((await postJson(app, { records: records.slice(at, at + 10) })).status).toBe(201);
  }
}

/** Every row of the source as the store holds it, newest first, unbounded in bytes. */
const rowsOf = async (source: string) => createRecordReader(app.db).list({ source, limit: 1_000 });

describe('list pages bounded in bytes', () => {
  // Small and large records mixed; three are larger than the bound on their own.
  const sizes = [
    100, 3_000, 9_000, 25_000, 200, 200, 7_000, 50_000, 4_000, 4_000, 4_000, 4_000, 4_000, 30_000, 10, 10, 10, 19_000,
    1_000, 6_000, 6_000, 6_000, 100, 12_000, 12_000,
  ];
  let source: string;
  let all: string[];
  let bytesOf: Map<string, number>;

  beforeAll(async () => {
    source = uniqueSource('bytes');
    await storeSized(source, sizes);
    const rows = await rowsOf(source);
    all = rows.map((row) => row.id);
    bytesOf = new Map(rows.map((row) => [row.id, row.bytes]));
    expect(all).toHaveLength(sizes.length);
    expect(rows.every((row) => row.bytes === Buffer.byteLength(row.json))).toBe(true);
  });

  for (const limit of [1000, 3]) {
    it(`walks limit=${limit} pages by next_cursor: each page within the bound, every record once, in order`, async () => {
      const pages: string[][] = [];
      let cursor: string | undefined;
      do {
        const one = await page({ source, limit: String(limit), ...(cursor && { cursor }) });
        pages.push(one.ids);
        cursor = one.nextCursor ?? undefined;
      } while (cursor !== undefined);
      expect(pages.flat()).toEqual(all);
      const bytes = (ids: readonly string[]) => ids.reduce((sum, id) => sum + (bytesOf.get(id) ?? 0), 0);
      let shortened = 0;
      for (const [i, ids] of pages.entries()) {
        // Within the bound unless one record alone is larger; cut short only when the next record did not fit.
        expect({ i, fits: ids.length === 1 || bytes(ids) <= MAX_BYTES }).toEqual({ i, fits: true });
        const next = pages[i + 1]?.[0];
        if (ids.length < limit && next !== undefined) {
          shortened++;
          expect({ i, full: bytes(ids) + (bytesOf.get(next) ?? 0) > MAX_BYTES }).toEqual({ i, full: true });
        }
      }
      expect(shortened).toBeGreaterThan(0);
    });
  }

  it('leaves in PostgreSQL the rows after the first that does not fit, and keeps a page that fits to the byte', async () => {
    const rows = await rowsOf(source);
    const [a, b, c, d] = rows.map((row) => row.bytes);
    const ids = (list: ReadonlyArray<{ id: string }>) => list.map((row) => row.id);
    const bounded = (maxBytes: number) => createRecordReader(app.db).list({ source, limit: 1_000, maxBytes });
    const shownAt = (maxBytes: number) => ids(pageOf(rows, 1_000, maxBytes).shown);
    // Exactly two rows' worth: the page is both, and the third comes back to say that more follow; not the fourth.
    expect(ids(await bounded((a ?? 0) + (b ?? 0)))).toEqual(ids(rows.slice(0, 3)));
    expect(shownAt((a ?? 0) + (b ?? 0))).toEqual(ids(rows.slice(0, 2)));
    // One byte less: the page is the first row, and the second says more follow.
    expect(ids(await bounded((a ?? 0) + (b ?? 0) - 1))).toEqual(ids(rows.slice(0, 2)));
    // Smaller than the first row alone: still two rows (the page of one, and the sign of more).
    expect(ids(await bounded(1))).toEqual(ids(rows.slice(0, 2)));
    expect(ids(await bounded((a ?? 0) + (b ?? 0) + (c ?? 0) + (d ?? 0)))).toEqual(ids(rows.slice(0, 5)));
  });

  it('writes no value larger than CACHE_VALUE_MAX_BYTES to Redis: large pages and records are served uncached', async () => {
    const mixed = uniqueSource('cache-bytes');
    await storeSized(mixed, [20_000, 100]);
    const [small, large] = (await rowsOf(mixed)).map((row) => row.id);
    // The first page holds the small (newest) record alone (both exceed the list bound); the second the large one.
    const first = await page({ source: mixed, limit: '1000' });
    expect(first.ids).toEqual([small]);
    expect((await page({ source: mixed, limit: '1000', cursor: first.nextCursor ?? '' })).ids).toEqual([large]);
    for (const id of [small, large]) expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(200);
    const prefix = app.redisKeyPrefix ?? '';
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    const stored = await Promise.all(keys.map(async (key) => [key, await redis.strlen(key)] as const));
    expect(stored.filter(([, size]) => size > CACHE_MAX_BYTES)).toEqual([]);
    // What fits is still cached: the small record, and the page of it alone. The large record's key holds at most
    // the marker its write left ('+', lib/cache/record-cache.ts), never the record.
    expect((await redis.get(`${prefix}rec:${small}`))?.length).toBeGreaterThan(100);
    expect(['+', null]).toContain(await redis.get(`${prefix}rec:${large}`));
    expect(keys.filter((key) => key.startsWith(`${prefix}{src:${mixed}}:page:`))).toHaveLength(1);
  });
});
