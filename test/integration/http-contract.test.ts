/**
 * The HTTP contract both functions share, over real HTTP: routing errors (404, 405 with Allow), request ids,
 * the OpenAPI document, probes, HEAD, and opaque 5xx bodies.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createAccessGate } from '#lib/auth';
import { uncachedPages } from '#lib/cache';
import { createSilentLogger } from '#lib/observability';
import {
  createCursorCodec,
  createIngestService,
  createQueryService,
  createRecordValidator,
  documentFromStore,
  type RecordReader,
  type RecordWriter,
} from '#lib/records';
import { createRuntimeServer, type RuntimeServer } from '#lib/runtime';
import { createIngestHandler } from '../../functions/ingest/handler.ts';
import { createQueryHandler } from '../../functions/query/handler.ts';
import { getJson, postJson, startTestApp, TEST_LIMITS, type TestApp, uniqueSource, withToken } from '../support/app.ts';

const PROBLEMS = 'https://data-service.dev/problems/';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const headers = await withToken(Object.fromEntries(new Headers(init.headers).entries()));
  const response = await fetch(url, { ...init, headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const json = (answer: Answer): Record<string, unknown> => JSON.parse(answer.text) as Record<string, unknown>;

function expectProblem(answer: Answer, status: number, code: string): Record<string, unknown> {
  expect({ status: answer.status, type: answer.text && json(answer).type }).toEqual({
    status,
    type: `${PROBLEMS}${code}`,
  });
  expect(answer.headers.get('content-type')).toBe('application/problem+json');
  const body = json(answer);
  expect(body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  return body;
}

const functions = (): Array<[string, string]> => [
  ['ingest', app.ingestUrl],
  ['query', app.queryUrl],
];
const FUNCTION_NAMES = [['ingest'], ['query']] as const;
const urlOf = (name: string): string => (name === 'ingest' ? app.ingestUrl : app.queryUrl);

const record = (source: string) => ({ source, type: 'reading', payload: { n: 1 } });

async function storeOne(): Promise<string> {
  const posted = await postJson(app, record(uniqueSource()));
  expect(posted.status).toBe(201);
  return (posted.json.records as Array<{ id: string }>)[0]?.id ?? '';
}

describe('routing', () => {
  it.each(FUNCTION_NAMES)('answers an unknown route on %s with a 404 route-not-found problem', async (name) => {
    for (const path of ['/nope', '/data/a/b', '/']) {
      const answer = await call(`${urlOf(name)}${path}`);
      expectProblem(answer, 404, 'route-not-found');
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
  });

  it.each(FUNCTION_NAMES)('answers DELETE /data on %s with 405 and Allow listing the API methods', async (name) => {
    const answer = await call(`${urlOf(name)}/data`, { method: 'DELETE' });
    expectProblem(answer, 405, 'method-not-allowed');
    expect(answer.headers.get('allow')).toBe('GET, HEAD, POST');
  });

  it.each(FUNCTION_NAMES)(
    'answers PUT /data/{id} with a JSON body on %s with 405 and Allow: GET, HEAD',
    async (name) => {
      const id = await storeOne();
      const answer = await call(`${urlOf(name)}/data/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(record(uniqueSource())),
      });
      expectProblem(answer, 405, 'method-not-allowed');
      expect(answer.headers.get('allow')).toBe('GET, HEAD');
    },
  );

  it.each(FUNCTION_NAMES)('answers PUT /data/{id} without a body on %s with 405, not 415', async (name) => {
    const id = await storeOne();
    const answer = await call(`${urlOf(name)}/data/${id}`, { method: 'PUT' });
    expectProblem(answer, 405, 'method-not-allowed');
    expect(answer.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers POST to an unknown route on ingest with 404, whatever its media type', async () => {
    const answer = await call(`${app.ingestUrl}/nope`, { method: 'POST', body: 'hello' });
    expectProblem(answer, 404, 'route-not-found');
  });

  it('answers POST /data sent to the query function with 405 and Allow containing POST', async () => {
    const source = uniqueSource();
    const answer = await call(`${app.queryUrl}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(record(source)),
    });
    expectProblem(answer, 405, 'method-not-allowed');
    expect(answer.headers.get('allow')?.split(', ')).toContain('POST');
    expect(answer.headers.get('allow')).toBe('GET, HEAD, POST');
    expect(json(await call(`${app.queryUrl}/data?source=${source}`)).records).toEqual([]);
  });

  it.each(FUNCTION_NAMES)('answers OPTIONS /data on %s with 204 and Allow', async (name) => {
    const answer = await call(`${urlOf(name)}/data`, { method: 'OPTIONS' });
    expect(answer.status).toBe(204);
    expect(answer.headers.get('allow')).toBe('GET, HEAD, POST');
  });
});

describe('X-Request-Id', () => {
  const given = () => `req-${uniqueSource('id')}`;

  it('echoes a valid X-Request-Id on successful responses of both functions', async () => {
    const postId = given();
    const posted = await postJson(app, record(uniqueSource()), { 'x-request-id': postId });
    expect(posted.status).toBe(201);
    expect(posted.headers.get('x-request-id')).toBe(postId);
    const id = (posted.json.records as Array<{ id: string }>)[0]?.id ?? '';

    const getId = given();
    const read = await getJson(`${app.queryUrl}/data/${id}`, { 'x-request-id': getId });
    expect(read.status).toBe(200);
    expect(read.headers.get('x-request-id')).toBe(getId);

    const listId = given();
    const listed = await getJson(`${app.queryUrl}/data?limit=1`, { 'x-request-id': listId });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('x-request-id')).toBe(listId);
  });

  it.each([
    ['404 route-not-found', (headers: Record<string, string>) => call(`${app.queryUrl}/nope`, { headers })],
    ['404 not-found', (headers: Record<string, string>) => call(`${app.queryUrl}/data/${randomUUID()}`, { headers })],
    ['400 invalid-parameter', (headers: Record<string, string>) => call(`${app.queryUrl}/data?limit=0`, { headers })],
    [
      '405 method-not-allowed',
      (headers: Record<string, string>) => call(`${app.ingestUrl}/data`, { method: 'DELETE', headers }),
    ],
    [
      '415 unsupported-media-type',
      (headers: Record<string, string>) =>
        call(`${app.ingestUrl}/data`, { method: 'POST', headers: { ...headers, 'content-type': 'text/plain' } }),
    ],
    [
      '400 malformed-json',
      (headers: Record<string, string>) =>
        call(`${app.ingestUrl}/data`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: '{',
        }),
    ],
    [
      '422 validation-failed',
      (headers: Record<string, string>) =>
        call(`${app.ingestUrl}/data`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: '{}',
        }),
    ],
  ])('echoes a valid X-Request-Id on a %s problem and names it request_id in the body', async (_, send) => {
    const id = given();
    const answer = await send({ 'x-request-id': id });
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
    expect(answer.headers.get('x-request-id')).toBe(id);
    expect(json(answer).request_id).toBe(id);
  });

  it('echoes a valid X-Request-Id on a 413 payload-too-large answered by the runtime', async () => {
    const id = given();
    const answer = await call(`${app.ingestUrl}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: new Uint8Array(1024 * 1024 + 1),
    });
    expectProblem(answer, 413, 'payload-too-large');
    expect(answer.headers.get('x-request-id')).toBe(id);
    expect(json(answer).request_id).toBe(id);
  });

  it('generates a request id when none is sent, different for every request, and puts it in problem bodies', async () => {
    const ok = await call(`${app.queryUrl}/data?limit=1`);
    const problem = await call(`${app.queryUrl}/nope`);
    const okId = ok.headers.get('x-request-id') ?? '';
    const problemId = problem.headers.get('x-request-id') ?? '';
    expect(okId).toMatch(UUID);
    expect(problemId).toMatch(UUID);
    expect(okId).not.toBe(problemId);
    expect(json(problem).request_id).toBe(problemId);
  });

  it.each([
    ['with a space', 'has space'],
    ['longer than 128 characters', 'a'.repeat(129)],
    ['with a quote', 'a"b'],
  ])('replaces an X-Request-Id %s by a generated one', async (_, bad) => {
    const answer = await call(`${app.queryUrl}/nope`, { headers: { 'x-request-id': bad } });
    expect(answer.status).toBe(404);
    expect(answer.headers.get('x-request-id')).toMatch(UUID);
    expect(json(answer).request_id).toBe(answer.headers.get('x-request-id'));
  });
});

describe('OpenAPI, probes and HEAD', () => {
  it('serves the same OpenAPI 3.1 document from both functions', async () => {
    const [ingest, query] = await Promise.all(functions().map(([, url]) => call(`${url}/openapi.json`)));
    for (const answer of [ingest, query]) {
      expect(answer?.status).toBe(200);
      expect(answer?.headers.get('content-type')).toBe('application/json');
    }
    const ingestDoc = json(ingest ?? { status: 0, headers: new Headers(), text: '{}' });
    const queryDoc = json(query ?? { status: 0, headers: new Headers(), text: '{}' });
    expect(ingestDoc.openapi).toBe('3.1.0');
    expect(queryDoc).toEqual(ingestDoc);
    expect(Object.keys(ingestDoc.paths as object)).toEqual(expect.arrayContaining(['/data', '/data/{id}']));
  });

  it.each(FUNCTION_NAMES)('answers /healthz and /readyz on %s with 200', async (name) => {
    const health = await call(`${urlOf(name)}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ status: 'ok' });
    const ready = await call(`${urlOf(name)}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ status: 'ready' });
  });

  it('answers HEAD /data/{id} with 200, no body and the headers of GET', async () => {
    const id = await storeOne();
    const url = `${app.queryUrl}/data/${id}`;
    const got = await call(url);
    const head = await call(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    for (const name of ['content-type', 'content-length', 'etag', 'cache-control']) {
      expect({ name, value: head.headers.get(name) }).toEqual({ name, value: got.headers.get(name) });
    }
    expect(Number(head.headers.get('content-length'))).toBe(Buffer.byteLength(got.text));
  });
});

describe('5xx bodies', () => {
  // A store that fails the way a bug would: with a message full of internals. Whatever the error carries, the
  // client gets an opaque problem with the request id, and nothing of the message, SQL or stack.
  const SECRET = 'password=hunter2 SELECT * FROM records WHERE knex pg stack';
  const failing: RecordWriter & RecordReader = {
    insert: async () => {
      throw new Error(SECRET);
    },
    insertIdempotent: async () => {
      throw new TypeError(SECRET);
    },
    findById: async () => {
      throw Object.assign(new Error(SECRET), { code: 'XX000', detail: SECRET });
    },
    list: async () => {
      throw new RangeError(SECRET);
    },
  };
  let broken: { ingest: RuntimeServer; query: RuntimeServer; ingestUrl: string; queryUrl: string };
  beforeAll(async () => {
    const logger = createSilentLogger();
    const common = {
      logger,
      bodyLimitBytes: 1 << 20,
      keepAliveTimeoutMs: 95_000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
    };
    const ingest = createRuntimeServer({
      ...common,
      functionName: 'ingest',
      handler: createIngestHandler({
        ingest: createIngestService({
          writer: failing,
          validator: createRecordValidator(TEST_LIMITS),
          deadlineMs: 10_000,
        }),
        logger,
        openApi: {},
        gate: createAccessGate(undefined, undefined),
      }),
    });
    const query = createRuntimeServer({
      ...common,
      functionName: 'query',
      handler: createQueryHandler({
        query: createQueryService({
          records: documentFromStore(failing),
          pages: uncachedPages,
          reader: failing,
          cursors: createCursorCodec('another-test-secret-012345'),
          maxPageBytes: 4 * 1024 * 1024,
        }),
        logger,
        openApi: {},
        gate: createAccessGate(undefined, undefined),
      }),
    });
    broken = {
      ingest,
      query,
      ingestUrl: `http://127.0.0.1:${(await ingest.listen(0, '127.0.0.1')).port}`,
      queryUrl: `http://127.0.0.1:${(await query.listen(0, '127.0.0.1')).port}`,
    };
  });
  afterAll(async () => {
    await Promise.all([broken.ingest.drain(1_000), broken.query.drain(1_000)]);
  });

  it.each([
    ['POST /data', () => call(`${broken.ingestUrl}/data`, post(record(uniqueSource())))],
    [
      'POST /data with Idempotency-Key',
      () => call(`${broken.ingestUrl}/data`, post(record(uniqueSource()), { 'idempotency-key': 'k1' })),
    ],
    [
      'GET /data/{id}',
      () => call(`${broken.queryUrl}/data/${randomUUID()}`, { headers: { 'x-request-id': 'leak-probe' } }),
    ],
    ['GET /data', () => call(`${broken.queryUrl}/data?source=x`, { headers: { 'x-request-id': 'leak-probe' } })],
  ])('never leaks internals: %s', async (_, send) => {
    const answer = await send();
    expect(answer.status).toBe(500);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
    expect(answer.text).not.toMatch(/hunter2|SELECT|knex|\bpg\b|XX000/i);
    expect(answer.text).not.toMatch(/\n\s+at |node_modules|\.ts:\d+|stack/i);
    const body = json(answer);
    expect(Object.keys(body).sort()).toEqual(['detail', 'instance', 'request_id', 'status', 'title', 'type']);
    expect(body.type).toBe(`${PROBLEMS}internal`);
    expect(body.request_id).toBe(answer.headers.get('x-request-id'));
  });
});

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'x-request-id': 'leak-probe', ...headers },
  body: JSON.stringify(body),
});
