/**
 * The query function over real HTTP on real PostgreSQL: by-id reads with HTTP caching, and list pages newest first
 * with keyset pagination (cursor and Link header) and the source, type, from and to filters.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getJson, isoAgo, postJson, startTestApp, type TestApp, uniqueSource, withToken } from '../support/app.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app.close();
});

interface Listed {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly timestamp: string;
}

interface Page {
  readonly status: number;
  readonly headers: Headers;
  readonly records: Listed[];
  readonly nextCursor: string | null;
}

const record = (source: string, extra: Record<string, unknown> = {}) => ({
  source,
  type: 'reading',
  payload: { n: 1 },
  ...extra,
});

/** Stores records in one batch and returns them as the client sent them, with the ids the service reports. */
async function store(records: Array<Record<string, unknown>>): Promise<Listed[]> {
  const posted = await postJson(app, { records });
  expect(posted.status).toBe(201);
  const written = posted.json.records as Array<{ id: string; status: string }>;
  expect(written.every((w) => w.status === 'created')).toBe(true);
  return records.map((r, i) => ({
    id: written[i]?.id ?? '',
    source: r.source as string,
    type: r.type as string,
    timestamp: r.timestamp as string,
  }));
}

/** The API's order: timestamp DESC, then id DESC (PostgreSQL compares UUIDs bytewise = lower-case hex order). */
const newestFirst = (records: readonly Listed[]): Listed[] =>
  [...records].sort((a, b) =>
    a.timestamp === b.timestamp ? b.id.localeCompare(a.id) : Date.parse(b.timestamp) - Date.parse(a.timestamp),
  );

async function list(parameters: Record<string, string>): Promise<Page> {
  return fetchPage(`${app.queryUrl}/data?${new URLSearchParams(parameters)}`);
}

async function fetchPage(url: string): Promise<Page> {
  const answer = await getJson(url);
  expect(answer.status).toBe(200);
  const records = (answer.json.records as Array<Record<string, unknown>>).map((r) => ({
    id: r.id as string,
    source: r.source as string,
    type: r.type as string,
    timestamp: r.timestamp as string,
  }));
  return {
    status: answer.status,
    headers: answer.headers,
    records,
    nextCursor: answer.json.next_cursor as string | null,
  };
}

const idsOf = (records: readonly Listed[]): string[] => records.map((r) => r.id);

/** Distinct millisecond timestamps `step` ms apart, oldest first, ending a minute ago. */
const timestamps = (count: number, step = 1_000): string[] =>
  Array.from({ length: count }, (_, i) => isoAgo(60_000 + (count - 1 - i) * step));

describe('GET /data/{id}', () => {
  it('answers 200 with an ETag and an immutable, long-lived Cache-Control', async () => {
    const source = uniqueSource();
    const [stored] = await store([record(source, { timestamp: isoAgo(5_000) })]);
    const answer = await getJson(`${app.queryUrl}/data/${stored?.id}`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/json');
    expect(answer.json).toMatchObject({ id: stored?.id, source, type: 'reading', timestamp: stored?.timestamp });
    expect(answer.headers.get('etag')).toMatch(/^"[^"]+"$/);
    const cacheControl = answer.headers.get('cache-control') ?? '';
    expect(cacheControl).toContain('immutable');
    const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)?.[1]);
    expect(maxAge).toBeGreaterThanOrEqual(30 * 86_400);
    // The same representation always carries the same tag.
    expect((await getJson(`${app.queryUrl}/data/${stored?.id}`)).headers.get('etag')).toBe(answer.headers.get('etag'));
  });

  it.each([
    ['the same ETag', (etag: string) => etag],
    ['a list containing the ETag', (etag: string) => `"x", ${etag}`],
    ['the weak form of the ETag', (etag: string) => `W/${etag}`],
    ['*', () => '*'],
  ])('answers 304 with no body to If-None-Match with %s', async (_, ifNoneMatch) => {
    const [stored] = await store([record(uniqueSource())]);
    const url = `${app.queryUrl}/data/${stored?.id}`;
    const etag = (await getJson(url)).headers.get('etag') ?? '';
    const response = await fetch(url, { headers: await withToken({ 'if-none-match': ifNoneMatch(etag) }) });
    expect(response.status).toBe(304);
    expect(response.headers.get('etag')).toBe(etag);
    expect(response.headers.get('cache-control')).toContain('immutable');
    expect(await response.text()).toBe('');
  });

  it('answers 200 to If-None-Match with another ETag', async () => {
    const [stored] = await store([record(uniqueSource())]);
    const answer = await getJson(`${app.queryUrl}/data/${stored?.id}`, { 'if-none-match': '"not-the-tag"' });
    expect(answer.status).toBe(200);
    expect(answer.json.id).toBe(stored?.id);
  });

  it('answers a 404 problem with Cache-Control no-store for an absent UUID', async () => {
    const id = randomUUID();
    const answer = await getJson(`${app.queryUrl}/data/${id}`);
    expect(answer.status).toBe(404);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('etag')).toBeNull();
    expect(answer.json).toMatchObject({
      type: 'https://data-service.dev/problems/not-found',
      status: 404,
      detail: expect.any(String),
    });
  });

  it('finds a record by its id in upper case', async () => {
    const [stored] = await store([record(uniqueSource())]);
    const answer = await getJson(`${app.queryUrl}/data/${stored?.id.toUpperCase()}`);
    expect(answer.status).toBe(200);
    expect(answer.json.id).toBe(stored?.id);
  });
});

describe('GET /data', () => {
  it('lists newest first by timestamp, breaking timestamp ties by id descending', async () => {
    const source = uniqueSource();
    const [older, tied, newer] = [isoAgo(120_000), isoAgo(90_000), isoAgo(60_000)];
    const stored = await store([
      record(source, { timestamp: older }),
      ...Array.from({ length: 6 }, () => record(source, { timestamp: tied, id: randomUUID() })),
      record(source, { timestamp: newer }),
    ]);
    const page = await list({ source });
    expect(page.records).toEqual(newestFirst(stored));
    expect(page.records[0]?.timestamp).toBe(newer);
    expect(page.records.at(-1)?.timestamp).toBe(older);
    const ties = page.records.filter((r) => r.timestamp === tied).map((r) => r.id);
    expect(ties).toHaveLength(6);
    expect(ties).toEqual([...ties].sort().reverse());
    expect(page.nextCursor).toBeNull();
    expect(page.headers.get('link')).toBeNull();
  });

  it('walks every page with limit=2 by next_cursor: the pages concatenate to the full list, in order', async () => {
    const source = uniqueSource();
    const tie = isoAgo(75_000);
    const stored = await store([
      ...timestamps(4).map((timestamp) => record(source, { timestamp })),
      ...Array.from({ length: 3 }, () => record(source, { timestamp: tie })),
    ]);
    const expected = idsOf(newestFirst(stored));
    const seen: string[] = [];
    const sizes: number[] = [];
    let page = await list({ source, limit: '2' });
    for (;;) {
      seen.push(...idsOf(page.records));
      sizes.push(page.records.length);
      if (page.nextCursor === null) break;
      expect(page.headers.get('link')).not.toBeNull();
      page = await list({ source, limit: '2', cursor: page.nextCursor });
    }
    expect(sizes).toEqual([2, 2, 2, 1]);
    expect(seen).toEqual(expected);
    expect(new Set(seen).size).toBe(seen.length);
    expect(page.headers.get('link')).toBeNull();
  });

  it('walks every page by the Link rel="next" header; an exact multiple of the limit ends with next_cursor null', async () => {
    const source = uniqueSource();
    const tie = isoAgo(70_000);
    const stored = await store([
      ...timestamps(3).map((timestamp) => record(source, { timestamp })),
      ...Array.from({ length: 3 }, () => record(source, { timestamp: tie })),
    ]);
    const seen: string[] = [];
    let url: string | undefined = `${app.queryUrl}/data?${new URLSearchParams({ source, limit: '2' })}`;
    let pages = 0;
    let last: Page | undefined;
    while (url !== undefined && pages < 10) {
      last = await fetchPage(url);
      pages++;
      seen.push(...idsOf(last.records));
      const link = last.headers.get('link');
      if (link === null) {
        url = undefined;
      } else {
        const match = /^<([^>]+)>;\s*rel="next"$/.exec(link);
        expect(match).not.toBeNull();
        const target = new URL(match?.[1] ?? '', app.queryUrl);
        expect(target.pathname).toBe('/data');
        expect(target.searchParams.get('source')).toBe(source);
        expect(target.searchParams.get('limit')).toBe('2');
        expect(target.searchParams.get('cursor')).toBe(last.nextCursor);
        url = target.toString();
      }
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(idsOf(newestFirst(stored)));
    expect(last?.records).toHaveLength(2);
    expect(last?.nextCursor).toBeNull();
    expect(last?.headers.get('link')).toBeNull();
  });

  it('defaults to 100 records per page', async () => {
    const source = uniqueSource();
    const stored = await store(timestamps(101, 10).map((timestamp) => record(source, { timestamp })));
    const expected = idsOf(newestFirst(stored));
    const first = await list({ source });
    expect(first.records).toHaveLength(100);
    expect(idsOf(first.records)).toEqual(expected.slice(0, 100));
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await list({ source, cursor: first.nextCursor ?? '' });
    expect(idsOf(second.records)).toEqual(expected.slice(100));
    expect(second.nextCursor).toBeNull();
  });

  it('allows limit=1000 and returns that many', async () => {
    const source = uniqueSource();
    await store(Array.from({ length: 1000 }, () => record(source)));
    await store([record(source)]);
    const page = await list({ source, limit: '1000' });
    expect(page.records).toHaveLength(1000);
    expect(page.nextCursor).toEqual(expect.any(String));
    const rest = await list({ source, limit: '1000', cursor: page.nextCursor ?? '' });
    expect(rest.records).toHaveLength(1);
    expect(rest.nextCursor).toBeNull();
  });

  it('filters by source', async () => {
    const [mine, other] = [uniqueSource(), uniqueSource()];
    const stored = await store([record(mine), record(other), record(mine)]);
    const page = await list({ source: mine });
    expect(idsOf(page.records).sort()).toEqual(idsOf(stored.filter((r) => r.source === mine)).sort());
  });

  it('filters by type, alone and together with source', async () => {
    const [a, b] = [uniqueSource(), uniqueSource()];
    const type = uniqueSource('type');
    const stored = await store([
      record(a, { type }),
      record(a, { type: 'other' }),
      record(b, { type }),
      record(b, { type: 'other' }),
    ]);
    const byType = await list({ type });
    expect(idsOf(byType.records).sort()).toEqual(idsOf(stored.filter((r) => r.type === type)).sort());
    const both = await list({ source: a, type });
    expect(idsOf(both.records)).toEqual([stored[0]?.id]);
  });

  it('treats from as inclusive and to as exclusive, and from == to as empty', async () => {
    const source = uniqueSource();
    const [t0, t1, t2, t3] = timestamps(4);
    const stored = newestFirst(await store([t0, t1, t2, t3].map((timestamp) => record(source, { timestamp }))));
    const ids = (...at: Array<string | undefined>) => stored.filter((r) => at.includes(r.timestamp)).map((r) => r.id);
    expect(idsOf((await list({ source, from: t1 ?? '', to: t3 ?? '' })).records)).toEqual(ids(t2, t1));
    expect(idsOf((await list({ source, from: t1 ?? '' })).records)).toEqual(ids(t3, t2, t1));
    expect(idsOf((await list({ source, to: t2 ?? '' })).records)).toEqual(ids(t1, t0));
    expect(idsOf((await list({ source, from: t2 ?? '', to: t2 ?? '' })).records)).toEqual([]);
  });

  it('honours from and to given with a non-UTC offset', async () => {
    const source = uniqueSource();
    const [t0, t1, t2] = timestamps(3).map((t) => Date.parse(t));
    const stored = await store(
      [t0, t1, t2].map((ms) => record(source, { timestamp: new Date(ms ?? 0).toISOString() })),
    );
    const withOffset = (ms: number) => new Date(ms + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
    const page = await list({ source, from: withOffset(t1 ?? 0), to: withOffset(t2 ?? 0) });
    expect(idsOf(page.records)).toEqual([stored[1]?.id]);
  });

  it('keeps later pages stable when newer records arrive between page fetches (keyset, not offset)', async () => {
    const source = uniqueSource();
    const stored = await store(timestamps(5).map((timestamp) => record(source, { timestamp })));
    const expected = idsOf(newestFirst(stored));
    const first = await list({ source, limit: '2' });
    expect(idsOf(first.records)).toEqual(expected.slice(0, 2));
    await store(Array.from({ length: 3 }, () => record(source, { timestamp: isoAgo(1_000) })));
    const second = await list({ source, limit: '2', cursor: first.nextCursor ?? '' });
    expect(idsOf(second.records)).toEqual(expected.slice(2, 4));
    const third = await list({ source, limit: '2', cursor: second.nextCursor ?? '' });
    expect(idsOf(third.records)).toEqual(expected.slice(4));
    expect(third.nextCursor).toBeNull();
    expect((await list({ source })).records).toHaveLength(8);
  });
});
