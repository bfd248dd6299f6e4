import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getJson, isoAgo, postJson, startTestApp, type TestApp, uniqueSource } from '../support/app.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app.close();
});

const record = (source: string, extra: Record<string, unknown> = {}) => ({
  source,
  type: 'reading',
  payload: { celsius: 21.5, tags: ['a', 'b'], nested: { ok: true } },
  ...extra,
});

describe('POST /data', () => {
  it('stores one record, answers 201 with its id and Location, and it reads back unchanged', async () => {
    const source = uniqueSource();
    const timestamp = isoAgo(60_000);
    const posted = await postJson(app, record(source, { timestamp }));
    expect(posted.status).toBe(201);
    const [written] = posted.json.records as Array<{ id: string; status: string }>;
    expect(written?.status).toBe('created');
    expect(posted.headers.get('location')).toBe(`/data/${written?.id}`);

    const read = await getJson(`${app.queryUrl}/data/${written?.id}`);
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id: written?.id, source, type: 'reading', timestamp });
    expect(read.json.payload).toEqual({ celsius: 21.5, tags: ['a', 'b'], nested: { ok: true } });
    expect(Date.parse(read.json.received_at as string)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('assigns a time-ordered id and the receipt time when the client sends neither', async () => {
    const before = Date.now();
    const posted = await postJson(app, record(uniqueSource()));
    const id = (posted.json.records as Array<{ id: string }>)[0]?.id ?? '';
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const read = await getJson(`${app.queryUrl}/data/${id}`);
    const at = Date.parse(read.json.timestamp as string);
    expect(at).toBeGreaterThanOrEqual(before - 5);
    expect(at).toBeLessThanOrEqual(Date.now() + 5);
  });

  it('answers duplicate for a client id stored with the same content: key order, spacing and offsets aside', async () => {
    const id = randomUUID();
    const source = uniqueSource();
    const first = { id, source, type: 'reading', timestamp: '2026-01-01T12:00:00+01:00', payload: { a: 1, b: [1, 2] } };
    expect((await postJson(app, { ...first, timestamp: isoAgo(60_000) })).json.records).toEqual([
      { id, status: 'created' },
    ]);
    const stored = await getJson(`${app.queryUrl}/data/${id}`);
    const same = { id, source, type: 'reading', timestamp: stored.json.timestamp, payload: { b: [1, 2], a: 1 } };
    const again = await postJson(app, JSON.stringify(same, null, 2));
    expect(again.status).toBe(201);
    expect(again.json.records).toEqual([{ id, status: 'duplicate' }]);
    // The same instant written with another offset is the same content.
    const at = new Date(String(stored.json.timestamp));
    const shifted = new Date(at.getTime() + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
    expect((await postJson(app, { ...same, timestamp: shifted })).json.records).toEqual([{ id, status: 'duplicate' }]);
  });

  it('answers duplicate for a client id sent again without a timestamp, though the receipt time differs', async () => {
    const id = randomUUID();
    const body = record(uniqueSource(), { id });
    expect((await postJson(app, body)).json.records).toEqual([{ id, status: 'created' }]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await postJson(app, body)).json.records).toEqual([{ id, status: 'duplicate' }]);
  });

  it('answers 409 id-conflict for a client id stored with other content, and keeps the first version', async () => {
    const id = randomUUID();
    const source = uniqueSource();
    expect((await postJson(app, record(source, { id }))).json.records).toEqual([{ id, status: 'created' }]);
    for (const other of [
      record(source, { id, payload: { other: 1 } }),
      record(source, { id, type: 'other-type' }),
      record(uniqueSource(), { id }),
      record(source, { id, timestamp: isoAgo(1_000) }),
    ]) {
      const again = await postJson(app, other);
      expect(again.status).toBe(409);
      expect(again.json).toMatchObject({
        type: 'https://data-service.dev/problems/id-conflict',
        errors: [{ pointer: '/id', detail: 'is already stored with other content' }],
      });
      expect(String(again.json.detail)).toContain(id);
    }
    expect((await getJson(`${app.queryUrl}/data/${id}`)).json.payload).toEqual(record(source).payload);
  });

  it('refuses a whole batch with 409 when one record reuses an id for other content, storing nothing', async () => {
    const source = uniqueSource();
    const known = randomUUID();
    await postJson(app, record(source, { id: known }));
    const fresh = [randomUUID(), randomUUID()];
    const posted = await postJson(app, {
      records: [
        record(source, { id: fresh[0] }),
        record(source, { id: known, payload: { x: 2 } }),
        record(source, { id: fresh[1] }),
      ],
    });
    expect(posted.status).toBe(409);
    expect(posted.json.errors).toEqual([{ pointer: '/records/1/id', detail: 'is already stored with other content' }]);
    for (const id of fresh) expect((await getJson(`${app.queryUrl}/data/${id}`)).status).toBe(404);
  });

  it('gives exactly one created to concurrent writers of one id with different contents, 409 to the others', async () => {
    const id = randomUUID();
    const source = uniqueSource();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, n) => postJson(app, record(source, { id, payload: { writer: n } }))),
    );
    expect(answers.filter((a) => a.status === 201 && a.json.records)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409)).toHaveLength(7);
  });

  it('treats an upper-case client id as the same UUID', async () => {
    const id = randomUUID();
    const body = record(uniqueSource(), { id });
    await postJson(app, body);
    const again = await postJson(app, { ...body, id: id.toUpperCase() });
    expect(again.json.records).toEqual([{ id, status: 'duplicate' }]);
  });

  it('stores a batch atomically and reports each record in request order', async () => {
    const source = uniqueSource();
    const known = randomUUID();
    await postJson(app, record(source, { id: known }));
    const ids = [randomUUID(), known, randomUUID()];
    const posted = await postJson(app, { records: ids.map((id) => record(source, { id })) });
    expect(posted.status).toBe(201);
    expect(posted.headers.get('location')).toBeNull();
    expect(posted.json.records).toEqual([
      { id: ids[0], status: 'created' },
      { id: known, status: 'duplicate' },
      { id: ids[2], status: 'created' },
    ]);
    const listed = await getJson(`${app.queryUrl}/data?source=${source}`);
    expect((listed.json.records as unknown[]).length).toBe(3);
  });

  it('stores nothing of a batch with one bad record and names it by pointer', async () => {
    const source = uniqueSource();
    const posted = await postJson(app, {
      records: [record(source), record(source, { type: 'bad type!' }), record(source)],
    });
    expect(posted.status).toBe(422);
    expect(posted.headers.get('content-type')).toBe('application/problem+json');
    expect(posted.json.errors).toEqual([{ pointer: '/records/1/type', detail: expect.any(String) }]);
    const listed = await getJson(`${app.queryUrl}/data?source=${source}`);
    expect(listed.json.records).toEqual([]);
  });

  it('refuses a batch that repeats an id', async () => {
    const id = randomUUID();
    const source = uniqueSource();
    const posted = await postJson(app, { records: [record(source, { id }), record(source, { id })] });
    expect(posted.status).toBe(422);
    expect(posted.json.errors).toEqual([{ pointer: '/records/1/id', detail: 'repeats the id of /records/0' }]);
  });

  it('accepts the largest batch and refuses one more record', async () => {
    const source = uniqueSource();
    const many = Array.from({ length: 1000 }, () => record(source, { payload: { n: 1 } }));
    const ok = await postJson(app, { records: many });
    expect(ok.status).toBe(201);
    expect((ok.json.records as unknown[]).length).toBe(1000);
    const tooMany = await postJson(app, { records: [...many, record(source)] });
    expect(tooMany.status).toBe(422);
    expect(tooMany.json.errors).toEqual([{ pointer: '/records', detail: 'must hold at most 1000 records' }]);
  });

  it('makes concurrent writers of one id agree: exactly one created', async () => {
    const id = randomUUID();
    const source = uniqueSource();
    const results = await Promise.all(Array.from({ length: 12 }, () => postJson(app, record(source, { id }))));
    const statuses = results.map((r) => (r.json.records as Array<{ status: string }>)[0]?.status);
    expect(results.every((r) => r.status === 201)).toBe(true);
    expect(statuses.filter((s) => s === 'created')).toHaveLength(1);
    expect(statuses.filter((s) => s === 'duplicate')).toHaveLength(11);
  });
});

describe('Idempotency-Key', () => {
  it('replays the first response for the same key and body, without storing twice', async () => {
    const key = randomUUID();
    const body = record(uniqueSource());
    const first = await postJson(app, body, { 'idempotency-key': key });
    const second = await postJson(app, body, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.json).toEqual(first.json);
    expect((first.json.records as Array<{ status: string }>)[0]?.status).toBe('created');
  });

  it('answers 422 when the key is reused with another body', async () => {
    const key = randomUUID();
    await postJson(app, record(uniqueSource()), { 'idempotency-key': key });
    const other = await postJson(app, record(uniqueSource()), { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(other.json.type).toBe('https://data-service.dev/problems/idempotency-key-reused');
  });

  it('answers 409 with Retry-After while a request with the key is in flight', async () => {
    const key = randomUUID();
    // Hold the key's lock from another session, exactly as an in-flight request's transaction does. Keys are
    // per caller: the test token's subject is test-caller.
    const lock = `idempotency:11:test-caller:${key}`;
    const connection = await app.db.client.acquireConnection();
    try {
      await connection.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lock]);
      const source = uniqueSource();
      const blocked = await postJson(app, record(source), { 'idempotency-key': key });
      expect(blocked.status).toBe(409);
      expect(blocked.headers.get('retry-after')).toBe('1');
      expect((await getJson(`${app.queryUrl}/data?source=${source}`)).json.records).toEqual([]);
      await connection.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lock]);
      expect((await postJson(app, record(source), { 'idempotency-key': key })).status).toBe(201);
    } finally {
      await app.db.client.releaseConnection(connection);
    }
  });

  it('refuses a malformed key with 400', async () => {
    const posted = await postJson(app, record(uniqueSource()), { 'idempotency-key': 'has spaces in it' });
    expect(posted.status).toBe(400);
    expect(posted.json.type).toBe('https://data-service.dev/problems/invalid-header');
  });
});
