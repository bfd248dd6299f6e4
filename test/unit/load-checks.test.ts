/**
 * The load tests' response checks (load-tests/lib/checks.ts) against real answers: the smoke plan is driven
 * through the real ingest and query handlers (real validator, router, problem mapping, ETag) over an in-memory
 * store, and every answer must pass; then broken variants of real answers must each be caught.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { buildOpenApiDocument } from '#lib/api';
import { createAccessGate } from '#lib/auth';
import { uncachedPages } from '#lib/cache';
import { AppError } from '#lib/errors';
import { type FunctionContext, type HttpHandler, type HttpRequest, problemResponse } from '#lib/http';
import { createSilentLogger } from '#lib/observability';
import {
  createCursorCodec,
  createIngestService,
  createQueryService,
  createRecordValidator,
  documentFromStore,
  type RecordReader,
  type RecordSchemaLimits,
  type RecordWriter,
  type StoredRecord,
  type WriteResult,
} from '#lib/records';
import { createIngestHandler } from '../../functions/ingest/handler.ts';
import { createQueryHandler } from '../../functions/query/handler.ts';
import { checkExchange, type Exchange, jsonEqual, normalizeHeaders } from '../../load-tests/lib/checks.ts';
import { createRng } from '../../load-tests/lib/prng.ts';
import { DEFAULT_RECORD_OPTIONS, generateRecord } from '../../load-tests/lib/records.ts';
import {
  createRequestIds,
  functionOf,
  getPage,
  getRecord,
  postRecords,
  type RequestSpec,
  smokePlan,
} from '../../load-tests/lib/requests.ts';

const LIMITS: RecordSchemaLimits = {
  maxBatchRecords: 1000,
  payloadMaxBytes: 64 * 1024,
  payloadMaxDepth: 16,
  maxPastMs: 7 * 86_400_000,
  maxFutureMs: 24 * 3_600_000,
};
const BODY_LIMIT = 1024 * 1024;

type MemoryStore = RecordWriter & RecordReader;

/** A store in memory, with the semantics lib/db gives: all or nothing, duplicates, keyset order. */
function memoryStore(): MemoryStore {
  const rows = new Map<string, StoredRecord>();
  const keys = new Map<
    string,
    { fingerprint: string; result: ReturnType<Parameters<MemoryStore['insertIdempotent']>[1]['result']> }
  >();
  const insert: MemoryStore['insert'] = async (records) => {
    const results: WriteResult[] = [];
    for (const record of records) {
      if (rows.has(record.id)) {
        results.push({ id: record.id, status: 'duplicate' });
        continue;
      }
      const timestamp = new Date(Date.parse(record.timestamp)).toISOString();
      const { id, source, type, payload } = record;
      rows.set(id, { id, source, type, timestamp, payload, received_at: new Date().toISOString() });
      results.push({ id: record.id, status: 'created' });
    }
    return results;
  };
  const newer = (a: StoredRecord, b: { timestamp: string; id: string }) =>
    Date.parse(a.timestamp) - Date.parse(b.timestamp) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return {
    insert,
    async insertIdempotent(records, claim) {
      const known = keys.get(claim.key);
      if (known !== undefined) {
        return known.fingerprint === claim.fingerprint
          ? { kind: 'replayed', result: known.result }
          : { kind: 'fingerprint-mismatch' };
      }
      const result = claim.result(await insert(records));
      keys.set(claim.key, { fingerprint: claim.fingerprint, result });
      return { kind: 'committed', result };
    },
    findById: async (id) => {
      const row = rows.get(id);
      return row === undefined ? undefined : { json: JSON.stringify(row), source: row.source };
    },
    async list(query) {
      const after = query.after;
      return [...rows.values()]
        .filter(
          (r) =>
            (query.source === undefined || r.source === query.source) &&
            (query.type === undefined || r.type === query.type),
        )
        .filter((r) => after === undefined || newer(r, after) < 0)
        .sort((a, b) => newer(b, a))
        .slice(0, query.limit)
        .map((r) => {
          const json = JSON.stringify(r);
          return { id: r.id, timestamp: r.timestamp, json, bytes: Buffer.byteLength(json) };
        });
    },
  };
}

const context = {} as FunctionContext;
let ingest: HttpHandler;
let query: HttpHandler;

beforeAll(() => {
  const store = memoryStore();
  const logger = createSilentLogger();
  const openApi = buildOpenApiDocument(LIMITS);
  const validator = createRecordValidator(LIMITS);
  const gate = createAccessGate(undefined, undefined);
  ingest = createIngestHandler({
    ingest: createIngestService({ writer: store, validator, deadlineMs: 10_000 }),
    logger,
    openApi,
    gate,
  });
  query = createQueryHandler({
    query: createQueryService({
      records: documentFromStore(store),
      pages: uncachedPages,
      reader: store,
      cursors: createCursorCodec('test'),
      maxPageBytes: 4 * 1024 * 1024,
    }),
    logger,
    openApi,
    gate,
  });
});

/** A spec as the edge (lib/runtime/http-server.ts) hands it to a handler. */
function requestOf(spec: RequestSpec): HttpRequest {
  const [path = '', rawQuery = ''] = spec.path.split('?');
  return {
    method: spec.method,
    path,
    rawQuery,
    headers: normalizeHeaders(spec.headers),
    body: spec.body === undefined ? undefined : Buffer.from(spec.body),
    requestId: requestIdOf(spec),
    route: undefined,
    params: {},
    signal: new AbortController().signal,
  };
}

/** The edge echoes a well-formed X-Request-Id, or its own. */
const requestIdOf = (spec: RequestSpec): string => spec.headers['x-request-id'] ?? 'runtime-id';

/** What the service answers to `spec`, as the runtime would put it on the wire. */
async function answer(spec: RequestSpec): Promise<Exchange> {
  if (Buffer.byteLength(spec.body ?? '') > BODY_LIMIT) {
    // The runtime refuses an oversized body while it streams in, before any handler runs.
    const requestId = requestIdOf(spec);
    const response = problemResponse(new AppError('payload-too-large', 'too large'), { requestId });
    const headers = normalizeHeaders({ ...response.headers, 'x-request-id': requestId });
    return { status: response.statusCode, headers, body: response.body };
  }
  const response = await (functionOf(spec) === 'ingest' ? ingest : query)(requestOf(spec), context);
  const headers = normalizeHeaders({ ...response.headers, 'x-request-id': requestIdOf(spec) });
  return { status: response.statusCode, headers, body: String(response.body) };
}

const record = () => ({ ...DEFAULT_RECORD_OPTIONS, now: Date.now(), runTag: 'rcheck' });
const ids = createRequestIds('rcheck', 'u');

describe('checks over real handler answers', () => {
  it('pass every step of the smoke plan', async () => {
    const plan = smokePlan({ rng: createRng(11), record: record(), batchSize: 4, requestId: ids });
    const seen: string[] = [];
    for (let step = plan.next(); step.done !== true; ) {
      const spec = step.value;
      // Probes are served by the runtime, not the handlers: the integration smoke test covers them.
      const exchange =
        spec.expect.kind === 'probe'
          ? { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' }
          : await answer(spec);
      expect({ step: spec.name, failures: checkExchange(spec, exchange) }).toEqual({ step: spec.name, failures: [] });
      seen.push(spec.name);
      step = plan.next(exchange);
    }
    expect(seen).toEqual(
      expect.arrayContaining(['get-not-modified', 'post-idempotent', 'post-too-large', 'method-not-allowed']),
    );
    expect(seen.filter((name) => name === 'list-page')).toHaveLength(2);
  });

  describe('reject broken variants of real answers', () => {
    const rng = createRng(12);
    let created: { spec: RequestSpec; exchange: Exchange };
    let read: { spec: RequestSpec; exchange: Exchange };
    let page: { spec: RequestSpec; exchange: Exchange };
    let problem: { spec: RequestSpec; exchange: Exchange };

    beforeAll(async () => {
      const options = { ...record(), sources: 1 };
      const first = generateRecord(rng, options);
      const second = {
        ...generateRecord(rng, options),
        timestamp: new Date(Date.parse(first.timestamp) - 1000).toISOString(),
      };
      const post = postRecords(first, ids());
      created = { spec: post, exchange: await answer(post) };
      await answer(postRecords(second, ids()));
      const get = getRecord(first, ids());
      read = { spec: get, exchange: await answer(get) };
      const list = getPage(first.source, 1, ids(), { ids: [first.id], next: true });
      page = { spec: list, exchange: await answer(list) };
      const missing: RequestSpec = {
        ...getRecord(first, ids()),
        path: `/data/${rng.uuid()}`,
        expect: { kind: 'problem', status: 404, code: 'not-found' },
      };
      problem = { spec: missing, exchange: await answer(missing) };
      for (const real of [created, read, page, problem]) expect(checkExchange(real.spec, real.exchange)).toEqual([]);
    });

    const broken = (base: { spec: RequestSpec; exchange: Exchange }, change: (e: Exchange) => Exchange) =>
      checkExchange(base.spec, change(base.exchange));
    const body = (e: Exchange) => JSON.parse(e.body) as Record<string, unknown>;
    const withBody = (e: Exchange, value: unknown): Exchange => ({ ...e, body: JSON.stringify(value) });
    const withHeaders = (e: Exchange, headers: Record<string, string | undefined>): Exchange => {
      const merged: Record<string, string> = {};
      for (const [k, v] of Object.entries({ ...e.headers, ...headers })) if (v !== undefined) merged[k] = v;
      return { ...e, headers: merged };
    };

    it.each([
      ['another status', (e: Exchange) => ({ ...e, status: 200 })],
      ['a lost id', (e: Exchange) => withBody(e, { records: [] })],
      [
        'another id',
        (e: Exchange) => withBody(e, { records: [{ id: '00000000-0000-4000-8000-000000000000', status: 'created' }] }),
      ],
      [
        'an unknown status',
        (e: Exchange) => withBody(e, { records: [{ ...(body(e).records as object[])[0], status: 'stored' }] }),
      ],
      ['no Location', (e: Exchange) => withHeaders(e, { location: undefined })],
      ['text/html', (e: Exchange) => withHeaders(e, { 'content-type': 'text/html' })],
      ['another request id', (e: Exchange) => withHeaders(e, { 'x-request-id': 'someone-else' })],
      ['no request id', (e: Exchange) => withHeaders(e, { 'x-request-id': undefined })],
    ])('a 201 with %s', (_name, change) => {
      expect(broken(created, change).length).toBeGreaterThan(0);
    });

    it.each([
      ['another payload', (e: Exchange) => withBody(e, { ...body(e), payload: { changed: true } })],
      ['another instant', (e: Exchange) => withBody(e, { ...body(e), timestamp: '2000-01-01T00:00:00.000Z' })],
      [
        'a non-UTC timestamp',
        (e: Exchange) => withBody(e, { ...body(e), timestamp: String(body(e).timestamp).replace('Z', '+00:00') }),
      ],
      ['no received_at', (e: Exchange) => withBody(e, { ...body(e), received_at: undefined })],
      ['no ETag', (e: Exchange) => withHeaders(e, { etag: undefined })],
      ['short caching', (e: Exchange) => withHeaders(e, { 'cache-control': 'no-cache' })],
      ['a non-JSON body', (e: Exchange) => ({ ...e, body: '<html>' })],
    ])('a record with %s', (_name, change) => {
      expect(broken(read, change).length).toBeGreaterThan(0);
    });

    it.each([
      [
        'too many records',
        (e: Exchange) =>
          withBody(e, { ...body(e), records: [...(body(e).records as object[]), ...(body(e).records as object[])] }),
      ],
      ['no next_cursor', (e: Exchange) => withBody(e, { ...body(e), next_cursor: null })],
      ['no Link', (e: Exchange) => withHeaders(e, { link: undefined })],
      [
        'a record of another source',
        (e: Exchange) => withBody(e, { ...body(e), records: [{ ...(body(e).records as object[])[0], source: 'x' }] }),
      ],
    ])('a page with %s', (_name, change) => {
      expect(broken(page, change).length).toBeGreaterThan(0);
    });

    it.each([
      ['application/json', (e: Exchange) => withHeaders(e, { 'content-type': 'application/json' })],
      ['another type', (e: Exchange) => withBody(e, { ...body(e), type: 'about:blank' })],
      ['a mismatched status', (e: Exchange) => withBody(e, { ...body(e), status: 500 })],
      ['no detail', (e: Exchange) => withBody(e, { ...body(e), detail: undefined })],
      ['malformed errors', (e: Exchange) => withBody(e, { ...body(e), errors: ['oops'] })],
      [
        'a 500 instead',
        (e: Exchange) => ({
          ...e,
          status: 500,
          body: 'Internal Server Error',
          headers: { 'content-type': 'text/plain' },
        }),
      ],
    ])('a problem with %s', (_name, change) => {
      expect(broken(problem, change).length).toBeGreaterThan(0);
    });

    it('accept shedding (429/503 problem with Retry-After) only when allowed, and never without Retry-After', () => {
      const shed = problemResponse(new AppError('overloaded', 'busy', { retryAfterSeconds: 1 }));
      const exchange = { status: shed.statusCode, headers: normalizeHeaders(shed.headers), body: shed.body };
      expect(checkExchange(read.spec, exchange)).not.toEqual([]);
      expect(checkExchange(read.spec, exchange, { allowShed: true })).toEqual([]);
      const noRetry = withHeaders(exchange, { 'retry-after': undefined });
      expect(checkExchange(read.spec, noRetry, { allowShed: true })).toContain('503 without Retry-After');
    });
  });
});

describe('helpers', () => {
  it('normalise k6 and vegeta header shapes alike', () => {
    expect(normalizeHeaders({ 'Content-Type': 'application/json', ETag: '"a"' })).toEqual({
      'content-type': 'application/json',
      etag: '"a"',
    });
    expect(normalizeHeaders({ 'Content-Type': ['application/json'], Vary: ['a', 'b'] })).toEqual({
      'content-type': 'application/json',
      vary: 'a, b',
    });
    expect(normalizeHeaders(null)).toEqual({});
  });

  it('compare JSON ignoring key order, as jsonb stores it', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
  });
});
