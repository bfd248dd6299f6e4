/**
 * The requests a load run sends, as plain data (`RequestSpec`): method, path, headers, body and what a correct
 * answer looks like. k6 sends them with `k6/http`, the local runner writes them as vegeta targets, so both send
 * the same requests; `checks.ts` judges the answers. k6-independent: plain ES2020.
 */
import type { Exchange } from './checks.ts';
import type { LoadSettings } from './env.ts';
import { createRng, hashSeed, type Rng } from './prng.ts';
import {
  type BatchBody,
  DEFAULT_RECORD_OPTIONS,
  formatTimestamp,
  generateBatch,
  generatePayload,
  generateRecord,
  type RecordBody,
  type RecordOptions,
  runTagOf,
  sourceNames,
} from './records.ts';

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** What a correct answer is; `checks.ts` turns it into failures. */
export type Expectation =
  /** 201 listing `ids` in order; `status` when every result must be `created` (or `duplicate`). */
  | { readonly kind: 'created'; readonly ids: readonly string[]; readonly status?: 'created' | 'duplicate' }
  /** 200 with this record, ETag and immutable caching. */
  | { readonly kind: 'record'; readonly record: RecordBody }
  | { readonly kind: 'not-modified'; readonly etag: string }
  /** 200 list page; `ids` when the exact page is known, `next` when it must (not) have a next page. */
  | {
      readonly kind: 'page';
      readonly limit: number;
      readonly source?: string;
      readonly ids?: readonly string[];
      readonly next?: boolean;
    }
  /** An RFC 9457 problem with this status and type code, naming at least `pointers`. */
  | { readonly kind: 'problem'; readonly status: number; readonly code: string; readonly pointers?: readonly string[] }
  /** Exactly an earlier response again (idempotent replay). */
  | { readonly kind: 'replay'; readonly status: number; readonly body: string }
  | { readonly kind: 'openapi' }
  /** `/healthz`, `/readyz`: 200 JSON (outside the API's middlewares, so no request id). */
  | { readonly kind: 'probe' };

export interface RequestSpec {
  /** Groups requests in results: the k6 `name` tag, vegeta's per-name summaries. */
  readonly name: string;
  readonly method: HttpMethod;
  /** Path and query string, relative to the function's base URL. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly expect: Expectation;
}

/** The headers `spec` is sent with: its own, and the run's bearer token when TOKEN is set. */
export const headersOf = (spec: RequestSpec, settings: Pick<LoadSettings, 'token'>): Record<string, string> =>
  settings.token === undefined ? { ...spec.headers } : { ...spec.headers, authorization: `Bearer ${settings.token}` };

/** Record generator options of a run: its tag (from the seed), sources and payload size from the settings. */
export function recordOptionsOf(settings: LoadSettings, now: number): RecordOptions {
  return {
    ...DEFAULT_RECORD_OPTIONS,
    now,
    runTag: runTagOf(settings.seed),
    sources: settings.sources,
    payloadBytes: settings.payloadBytes,
  };
}

/** Which function answers a request: POST goes to ingest, everything else to query (as the Knative routes split). */
export const functionOf = (spec: Pick<RequestSpec, 'method'>): 'ingest' | 'query' =>
  spec.method === 'POST' ? 'ingest' : 'query';

/** Makes the `X-Request-Id` of each request: `<runTag>-<stream>-<n>`, unique per run, echoed by the service. */
export function createRequestIds(runTag: string, stream: string | number): () => string {
  let n = 0;
  return () => `${runTag}-${stream}-${(n++).toString(36)}`;
}

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

/** `POST /data` with one record or a batch; every id must come back, `created` or `duplicate`. */
export function postRecords(
  body: RecordBody | BatchBody,
  requestId: string,
  status?: 'created' | 'duplicate',
): RequestSpec {
  const ids = 'records' in body ? body.records.map((r) => r.id) : [body.id];
  return {
    name: 'records' in body ? 'post-batch' : 'post-one',
    method: 'POST',
    path: '/data',
    headers: { ...JSON_HEADERS, 'x-request-id': requestId },
    body: JSON.stringify(body),
    expect: status === undefined ? { kind: 'created', ids } : { kind: 'created', ids, status },
  };
}

/** `GET /data/{id}` of a record known to be stored. */
export function getRecord(record: RecordBody, requestId: string): RequestSpec {
  return {
    name: 'get-by-id',
    method: 'GET',
    path: `/data/${record.id}`,
    headers: { 'x-request-id': requestId },
    expect: { kind: 'record', record },
  };
}

/** `GET /data?source=…&limit=…` (newest first). */
export function getPage(
  source: string,
  limit: number,
  requestId: string,
  extra: { cursor?: string; ids?: readonly string[]; next?: boolean } = {},
): RequestSpec {
  const query = `source=${encodeURIComponent(source)}&limit=${limit}`;
  const cursor = extra.cursor === undefined ? '' : `&cursor=${encodeURIComponent(extra.cursor)}`;
  return {
    name: 'list-page',
    method: 'GET',
    path: `/data?${query}${cursor}`,
    headers: { 'x-request-id': requestId },
    expect: {
      kind: 'page',
      limit,
      source,
      ...(extra.ids !== undefined && { ids: extra.ids }),
      ...(extra.next !== undefined && { next: extra.next }),
    },
  };
}

/** Records written before a read-heavy run so that reads find something; the same for every seed. */
export function prefillRecords(seed: number, count: number, options: RecordOptions): RecordBody[] {
  return generateBatch(createRng(hashSeed(seed, 'prefill')), count, options).records.slice();
}

/** The prefill as batch POSTs of at most `perRequest` records. */
export function prefillRequests(
  records: readonly RecordBody[],
  perRequest: number,
  requestId: () => string,
): RequestSpec[] {
  const specs: RequestSpec[] = [];
  for (let i = 0; i < records.length; i += perRequest) {
    specs.push({ ...postRecords({ records: records.slice(i, i + perRequest) }, requestId()), name: 'prefill' });
  }
  return specs;
}

export interface MixOptions {
  /** Share of requests that read, 0–1 (READ_RATIO). */
  readonly readRatio: number;
  /** Records per write: 1 sends a single record, more a `{"records": [...]}` batch (BATCH_SIZE). */
  readonly batchSize: number;
  /** Share of reads that are list pages rather than by-id reads. */
  readonly listShare: number;
  /** `limit` of list pages. */
  readonly pageLimit: number;
  /** Stored records reads may ask for (the prefill). Needed when `readRatio` > 0. */
  readonly known: readonly RecordBody[];
  readonly record: RecordOptions;
}

export const DEFAULT_MIX: Omit<MixOptions, 'readRatio' | 'batchSize' | 'known' | 'record'> = {
  listShare: 0.1,
  pageLimit: 20,
};

/**
 * An endless stream of requests in the mix's proportions: writes of fresh records (client ids, so a replay is a
 * `duplicate`, never a second row), by-id reads of known records and list pages of the run's sources.
 */
export function createMixedStream(rng: Rng, mix: MixOptions, requestId: () => string): () => RequestSpec {
  if (mix.readRatio > 0 && mix.known.length === 0) throw new RangeError('a mix with reads needs known records');
  const sources = sourceNames(mix.record);
  return () => {
    if (rng.chance(mix.readRatio)) {
      if (rng.chance(mix.listShare)) return getPage(rng.pick(sources), mix.pageLimit, requestId());
      return getRecord(rng.pick(mix.known), requestId());
    }
    const body = mix.batchSize === 1 ? generateRecord(rng, mix.record) : generateBatch(rng, mix.batchSize, mix.record);
    return postRecords(body, requestId());
  };
}

/** `count` requests of a stream. */
export function take(stream: () => RequestSpec, count: number): RequestSpec[] {
  return Array.from({ length: count }, stream);
}

export interface SmokeOptions {
  readonly rng: Rng;
  readonly record: RecordOptions;
  /** Records in the smoke's batch POST (at least 3, so that a list has two pages). */
  readonly batchSize: number;
  readonly requestId: () => string;
  /** Send one body just over the service's 1 MiB limit to see a 413 (the default). */
  readonly oversized?: boolean;
  readonly bodyLimitBytes?: number;
}

/**
 * The smoke test: every route and every documented answer once, in an order where each step may use what an
 * earlier answer said (the ETag for a 304, `next_cursor` for page two). A generator, so k6 (synchronous) and the
 * Node runner (async fetch) drive the same steps: each `yield` hands out a request and receives its answer.
 */
export function* smokePlan(options: SmokeOptions): Generator<RequestSpec, void, Exchange> {
  const { rng, requestId } = options;
  // A source of its own per pass, so the list pages below hold exactly this pass's records.
  const source = `load.${options.record.runTag}.smoke.${rng.uuid().slice(0, 8)}`;
  const at = (secondsAgo: number) => formatTimestamp(options.record.now - secondsAgo * 1000, 0);
  const record = (secondsAgo: number): RecordBody => ({
    ...generateRecord(rng, options.record),
    source,
    timestamp: at(secondsAgo),
  });
  const batchSize = Math.max(3, options.batchSize);

  yield { name: 'healthz', method: 'GET', path: '/healthz', headers: {}, expect: { kind: 'probe' } };
  yield { name: 'readyz', method: 'GET', path: '/readyz', headers: {}, expect: { kind: 'probe' } };
  yield {
    name: 'openapi',
    method: 'GET',
    path: '/openapi.json',
    headers: { 'x-request-id': requestId() },
    expect: { kind: 'openapi' },
  };

  // Writes: one record, the same again (idempotent), a batch.
  const single = record(10);
  yield postRecords(single, requestId(), 'created');
  yield { ...postRecords(single, requestId(), 'duplicate'), name: 'post-duplicate' };
  const batch = { records: Array.from({ length: batchSize }, (_, i) => record(20 + i)) };
  yield postRecords(batch, requestId(), 'created');

  // Reads: by id, conditional, and the list in two pages, newest first.
  const read = yield getRecord(single, requestId());
  const etag = read.headers.etag;
  if (etag !== undefined) {
    yield {
      name: 'get-not-modified',
      method: 'GET',
      path: `/data/${single.id}`,
      headers: { 'x-request-id': requestId(), 'if-none-match': etag },
      expect: { kind: 'not-modified', etag },
    };
  }
  const newestFirst = [single, ...batch.records].map((r) => r.id);
  const first = yield getPage(source, 2, requestId(), { ids: newestFirst.slice(0, 2), next: true });
  const cursor = cursorOf(first.body);
  if (cursor !== undefined) {
    yield getPage(source, batchSize, requestId(), { cursor, ids: newestFirst.slice(2), next: false });
  }

  // Idempotency-Key: the first answer replayed, another body under the same key refused.
  const key = `smoke-${rng.uuid()}`;
  const keyed = record(5);
  const withKey = (body: RecordBody): RequestSpec => {
    const spec = postRecords(body, requestId(), 'created');
    return { ...spec, name: 'post-idempotent', headers: { ...spec.headers, 'idempotency-key': key } };
  };
  const original = yield withKey(keyed);
  yield { ...withKey(keyed), expect: { kind: 'replay', status: original.status, body: original.body } };
  yield { ...withKey(record(6)), expect: { kind: 'problem', status: 422, code: 'idempotency-key-reused' } };

  // Every documented error, each a problem+json.
  const q = (name: string, path: string, status: number, code: string, pointers?: string[]): RequestSpec => ({
    name,
    method: 'GET',
    path,
    headers: { 'x-request-id': requestId() },
    expect: { kind: 'problem', status, code, ...(pointers !== undefined && { pointers }) },
  });
  yield q('get-missing', `/data/${rng.uuid()}`, 404, 'not-found');
  yield q('get-bad-id', '/data/not-a-uuid', 400, 'invalid-parameter', ['/id']);
  yield q('list-bad-limit', `/data?source=${source}&limit=0`, 400, 'invalid-parameter', ['/limit']);
  yield q('list-unknown-parameter', '/data?colour=red', 400, 'invalid-parameter', ['/colour']);
  yield q('list-bad-cursor', `/data?source=${source}&cursor=not-a-cursor`, 400, 'invalid-cursor', ['/cursor']);
  yield q('route-missing', '/no-such-route', 404, 'route-not-found');
  yield { ...q('method-not-allowed', '/data', 405, 'method-not-allowed'), method: 'DELETE' };

  const post = (name: string, body: string, status: number, code: string, pointers?: string[]): RequestSpec => ({
    name,
    method: 'POST',
    path: '/data',
    headers: { ...JSON_HEADERS, 'x-request-id': requestId() },
    body,
    expect: { kind: 'problem', status, code, ...(pointers !== undefined && { pointers }) },
  });
  yield post('post-malformed', '{"source":', 400, 'malformed-json');
  const plain = post('post-wrong-media-type', JSON.stringify(record(1)), 415, 'unsupported-media-type');
  yield { ...plain, headers: { ...plain.headers, 'content-type': 'text/plain' } };
  const invalid = { source: 'bad source!', type: 't', timestamp: 'yesterday', payload: {} };
  yield post('post-invalid', JSON.stringify(invalid), 422, 'validation-failed', ['/source', '/timestamp']);
  // All or nothing: one bad record refuses the batch, and its good record is not stored.
  const good = record(2);
  const mixed = JSON.stringify({ records: [good, { ...record(3), payload: [1] }] });
  yield post('post-batch-invalid', mixed, 422, 'validation-failed', ['/records/1/payload']);
  yield q('get-refused-record', `/data/${good.id}`, 404, 'not-found');
  if (options.oversized ?? true) {
    const limit = options.bodyLimitBytes ?? 1024 * 1024;
    const big = { source, type: 'oversized', payload: { note: 'x'.repeat(limit) } };
    yield post('post-too-large', JSON.stringify(big), 413, 'payload-too-large');
  }
  // A payload near the 64 KiB limit still goes through whole.
  const large = { ...record(4), payload: generatePayload(rng, 'temperature', 60_000) };
  yield { ...postRecords(large, requestId(), 'created'), name: 'post-large-payload' };
  yield { ...getRecord(large, requestId()), name: 'get-large-payload' };
}

function cursorOf(body: string): string | undefined {
  try {
    const value = (JSON.parse(body) as { next_cursor?: unknown }).next_cursor;
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
