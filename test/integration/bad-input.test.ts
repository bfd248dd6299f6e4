/**
 * Invariant 4 over real HTTP: every kind of bad input gets its exact 4xx as application/problem+json with a stable
 * type, a detail and (for validation) every failing field as a JSON pointer; never a 5xx, and nothing is stored.
 */
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getJson, isoAgo, postJson, startTestApp, type TestApp, uniqueSource, withToken } from '../support/app.ts';

const MIB = 1024 * 1024;
const DAY_MS = 86_400_000;
const PROBLEMS = 'https://data-service.dev/problems/';

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
  readonly json: Record<string, unknown>;
}

const record = (source: string, extra: Record<string, unknown> = {}) => ({
  source,
  type: 'reading',
  payload: { celsius: 21.5 },
  ...extra,
});

/** Asserts the shape every error shares: the exact status, problem+json, the stable type and a detail. */
function expectProblem(answer: Answer, status: number, code: string): void {
  expect({ status: answer.status, type: answer.json.type }).toEqual({ status, type: `${PROBLEMS}${code}` });
  expect(answer.headers.get('content-type')).toBe('application/problem+json');
  expect(answer.json.status).toBe(status);
  expect(typeof answer.json.title).toBe('string');
  expect(typeof answer.json.detail).toBe('string');
  expect((answer.json.detail as string).length).toBeGreaterThan(0);
}

/** The JSON pointers of a problem's `errors`, sorted, after checking each issue has a detail. */
function pointersOf(answer: Answer): string[] {
  const errors = answer.json.errors as Array<{ pointer: unknown; detail: unknown }> | undefined;
  expect(Array.isArray(errors)).toBe(true);
  for (const issue of errors ?? []) {
    expect(typeof issue.pointer).toBe('string');
    expect(typeof issue.detail).toBe('string');
  }
  return (errors ?? []).map((issue) => issue.pointer as string).sort();
}

function expectValidation(answer: Answer, pointers: string[]): void {
  expectProblem(answer, 422, 'validation-failed');
  expect(pointersOf(answer)).toEqual([...pointers].sort());
}

async function expectNothingStored(source: string): Promise<void> {
  const listed = await getJson(`${app.queryUrl}/data?${new URLSearchParams({ source })}`);
  expect(listed.status).toBe(200);
  expect(listed.json.records).toEqual([]);
}

/** POSTs raw bytes with exactly the headers given (fetch adds no Content-Type for a Uint8Array body). */
async function postRaw(body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`${app.ingestUrl}/data`, {
    method: 'POST',
    headers: await withToken(headers),
    body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

const query = async (path: string): Promise<Answer> => getJson(`${app.queryUrl}${path}`);

/** `levels` nested objects, the outermost counted as level 1. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: true };
  for (let level = 1; level < levels; level++) value = { a: value };
  return value;
}

describe('raw HTTP body problems', () => {
  it('answers 400 malformed-json for a body that is not JSON', async () => {
    const source = uniqueSource();
    const answer = await postJson(app, `{"source":"${source}","type":"reading","payload":{`);
    expectProblem(answer, 400, 'malformed-json');
    await expectNothingStored(source);
  });

  it.each([
    ['an array', (source: string) => JSON.stringify([record(source)])],
    ['a string', (source: string) => JSON.stringify(source)],
    ['a number', () => '42'],
    ['null', () => 'null'],
  ])('answers 422 with pointer "" when the top-level JSON is %s', async (_, bodyOf) => {
    const source = uniqueSource();
    const answer = await postJson(app, bodyOf(source));
    expectValidation(answer, ['']);
    await expectNothingStored(source);
  });

  it('answers 415 for Content-Type text/plain', async () => {
    const source = uniqueSource();
    const answer = await postRaw(JSON.stringify(record(source)), { 'content-type': 'text/plain' });
    expectProblem(answer, 415, 'unsupported-media-type');
    await expectNothingStored(source);
  });

  it('answers 415 when there is no Content-Type', async () => {
    const source = uniqueSource();
    const answer = await postRaw(JSON.stringify(record(source)));
    expectProblem(answer, 415, 'unsupported-media-type');
    await expectNothingStored(source);
  });

  it('answers 415 for a JSON media type in a charset other than UTF-8', async () => {
    const source = uniqueSource();
    const answer = await postRaw(JSON.stringify(record(source)), {
      'content-type': 'application/json; charset=iso-8859-1',
    });
    expectProblem(answer, 415, 'unsupported-media-type');
    await expectNothingStored(source);
  });

  it('answers 400 malformed-json for an empty body', async () => {
    const answer = await postRaw('', { 'content-type': 'application/json' });
    expectProblem(answer, 400, 'malformed-json');
  });

  it('answers 400 malformed-json for bytes that are not UTF-8', async () => {
    const source = uniqueSource();
    const prefix = Buffer.from(`{"source":"${source}","type":"reading","payload":{"text":"`);
    const body = Buffer.concat([prefix, Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}}')]);
    const answer = await postRaw(body, { 'content-type': 'application/json' });
    expectProblem(answer, 400, 'malformed-json');
    await expectNothingStored(source);
  });

  it('answers 413 for a body over 1 MiB declared by Content-Length', async () => {
    const source = uniqueSource();
    const body = oversizedBody(source, MIB + 1);
    const answer = await exchangeRaw(app.ingestUrl, async (socket) => {
      await write(socket, requestHead({ 'content-length': String(body.length) }));
      await write(socket, body);
    });
    expectProblem(answer, 413, 'payload-too-large');
    await expectNothingStored(source);
  });

  it('answers 413 promptly to a chunked body trickling past 1 MiB, without waiting for the rest of it', async () => {
    const source = uniqueSource();
    const started = performance.now();
    let sent = 0;
    let answered = false;
    const answer = await exchangeRaw(app.ingestUrl, async (socket, isAnswered) => {
      await write(socket, requestHead({ 'transfer-encoding': 'chunked' }));
      const prefix = Buffer.from(`{"source":"${source}","type":"reading","payload":{"filler":"`);
      await write(socket, chunk(prefix));
      sent += prefix.length;
      const filler = Buffer.alloc(64 * 1024, 'x');
      // Keep trickling for far longer than the cap; the terminating chunk is never sent, so only a server that
      // stops at the limit can answer.
      while (!isAnswered() && sent < 8 * MIB) {
        await write(socket, chunk(filler));
        sent += filler.length;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      answered = isAnswered();
    });
    expectProblem(answer, 413, 'payload-too-large');
    expect(answered).toBe(true);
    expect(sent).toBeLessThan(2 * MIB);
    expect(performance.now() - started).toBeLessThan(5_000);
    await expectNothingStored(source);
  }, 10_000);
});

describe('record field rules (422 validation-failed)', () => {
  const cases: Array<[string, (source: string) => Record<string, unknown>, string[]]> = [
    ['source with a disallowed character', (s) => ({ ...record(s), source: `${s} !` }), ['/source']],
    ['source longer than 128 characters', (s) => ({ ...record(s), source: `${s}.${'a'.repeat(128)}` }), ['/source']],
    ['empty source', (s) => ({ ...record(s), source: '' }), ['/source']],
    ['missing source', (s) => ({ type: 'reading', payload: { s } }), ['/source']],
    ['type with a disallowed character', (s) => record(s, { type: 'read ing' }), ['/type']],
    ['type longer than 128 characters', (s) => record(s, { type: 'a'.repeat(129) }), ['/type']],
    ['empty type', (s) => record(s, { type: '' }), ['/type']],
    ['type that is not a string', (s) => record(s, { type: 7 }), ['/type']],
    ['id that is not a UUID', (s) => record(s, { id: 'not-a-uuid' }), ['/id']],
    ['id that is a UUID missing one digit', (s) => record(s, { id: randomUUID().slice(0, -1) }), ['/id']],
    ['timestamp that is not RFC 3339', (s) => record(s, { timestamp: 'yesterday at noon' }), ['/timestamp']],
    ['timestamp without an offset', (s) => record(s, { timestamp: isoAgo(60_000).replace('Z', '') }), ['/timestamp']],
    ['timestamp on 30 February', (s) => record(s, { timestamp: thirtiethOfFebruary() }), ['/timestamp']],
    ['timestamp 8 days in the past', (s) => record(s, { timestamp: isoAgo(8 * DAY_MS) }), ['/timestamp']],
    ['timestamp 2 days in the future', (s) => record(s, { timestamp: isoAgo(-2 * DAY_MS) }), ['/timestamp']],
    ['payload that is an array', (s) => record(s, { payload: [1, 2] }), ['/payload']],
    ['payload that is a string', (s) => record(s, { payload: 'text' }), ['/payload']],
    ['payload that is null', (s) => record(s, { payload: null }), ['/payload']],
    ['missing payload', (s) => ({ source: s, type: 'reading' }), ['/payload']],
    ['payload nested 17 levels deep', (s) => record(s, { payload: nested(17) }), ['/payload']],
    [
      'payload larger than 64 KiB as JSON',
      (s) => record(s, { payload: { text: 'x'.repeat(64 * 1024) } }),
      ['/payload'],
    ],
    ['NUL in a payload string', (s) => record(s, { payload: { text: 'a\u0000b' } }), ['/payload/text']],
    ['NUL in a payload key', (s) => record(s, { payload: { 'k\u0000ey': 1 } }), ['/payload/k\u0000ey']],
    ['NUL in a nested payload array', (s) => record(s, { payload: { list: ['ok', '\u0000'] } }), ['/payload/list/1']],
    ['NUL in source', (s) => record(`${s}\u0000`), ['/source']],
    ['unknown top-level fields', (s) => record(s, { extra: 1, timestamp_ms: Date.now() }), ['/extra', '/timestamp_ms']],
    [
      'several bad fields at once',
      (s) => ({ id: 'nope', source: `${s} bad`, type: '', timestamp: '2026-13-01', payload: [], extra: true }),
      ['/extra', '/id', '/payload', '/source', '/timestamp', '/type'],
    ],
  ];

  it.each(cases)('refuses a %s', async (_, bodyOf, pointers) => {
    const source = uniqueSource();
    const answer = await postJson(app, bodyOf(source));
    expectValidation(answer, pointers);
    await expectNothingStored(source);
  });

  it('accepts a payload exactly 16 levels deep (the limit), so the 17-level refusal is the boundary', async () => {
    const source = uniqueSource();
    expect((await postJson(app, record(source, { payload: nested(16) }))).status).toBe(201);
  });

  it('refuses a payload nested 100 000 levels deep with 422, not a crash', async () => {
    const source = uniqueSource();
    const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    const answer = await postJson(app, `{"source":"${source}","type":"reading","payload":${deep}}`);
    expectValidation(answer, ['/payload']);
    await expectNothingStored(source);
  });

  it('refuses a lone UTF-16 surrogate escaped in a payload string', async () => {
    const source = uniqueSource();
    const answer = await postJson(app, `{"source":"${source}","type":"reading","payload":{"text":"\\ud800"}}`);
    expectValidation(answer, ['/payload/text']);
    await expectNothingStored(source);
  });

  it('refuses a number too large for a double (1e400) in the payload', async () => {
    const source = uniqueSource();
    const answer = await postJson(app, `{"source":"${source}","type":"reading","payload":{"n":1e400}}`);
    expectValidation(answer, ['/payload/n']);
    await expectNothingStored(source);
  });

  it.each([
    [
      '__proto__ at the top level',
      (s: string) => `{"__proto__":{"polluted":true},"source":"${s}","type":"t","payload":{}}`,
      '/__proto__',
    ],
    [
      'constructor at the top level',
      (s: string) => `{"constructor":{"prototype":{"polluted":true}},"source":"${s}","type":"t","payload":{}}`,
      '/constructor',
    ],
    [
      '__proto__ in the payload',
      (s: string) => `{"source":"${s}","type":"t","payload":{"ok":1,"__proto__":{"polluted":true}}}`,
      '/payload/__proto__',
    ],
    [
      'constructor in the payload',
      (s: string) => `{"source":"${s}","type":"t","payload":{"constructor":{"prototype":{"polluted":true}}}}`,
      '/payload/constructor',
    ],
    [
      '__proto__ deep in the payload',
      (s: string) => `{"source":"${s}","type":"t","payload":{"a":[{"__proto__":{"polluted":true}}]}}`,
      '/payload/a/0/__proto__',
    ],
  ])('refuses the reserved key %s', async (_, bodyOf, pointer) => {
    const source = uniqueSource();
    const answer = await postJson(app, bodyOf(source));
    expectValidation(answer, [pointer]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await expectNothingStored(source);
  });

  it('refuses a batch with one bad record, naming /records/<i>/<field>, and stores none of it', async () => {
    const source = uniqueSource();
    const answer = await postJson(app, {
      records: [record(source), record(source), record(source, { timestamp: 'not a time' }), record(source)],
    });
    expectValidation(answer, ['/records/2/timestamp']);
    await expectNothingStored(source);
  });

  it('lists bad fields of several batch records at once', async () => {
    const source = uniqueSource();
    const answer = await postJson(app, {
      records: [record(source, { id: 'x' }), record(source), record(source, { payload: { s: '\u0000' }, type: '' })],
    });
    expectValidation(answer, ['/records/0/id', '/records/2/payload/s', '/records/2/type']);
    await expectNothingStored(source);
  });

  it('answers 4xx, never 5xx, for an RFC 3339 timestamp whose offset PostgreSQL cannot hold (+20:00)', async () => {
    // RFC 3339 allows offsets up to ±23:59; PostgreSQL refuses displacements beyond ±15:59 (SQLSTATE 22009).
    const source = uniqueSource();
    const local = new Date(Date.now() + 20 * 3_600_000).toISOString().replace('Z', '+20:00');
    const answer = await postJson(app, record(source, { timestamp: local }));
    expect(answer.status).toBeLessThan(500);
    expect([201, 422]).toContain(answer.status);
  });
});

describe('query parameter problems (400)', () => {
  it('answers 400 for an id in the path that is not a UUID', async () => {
    const answer = await query('/data/not-a-uuid');
    expectProblem(answer, 400, 'invalid-parameter');
    expect(pointersOf(answer)).toEqual(['/id']);
  });

  it.each(['0', '-1', '1001', 'abc', '', '1.5'])('answers 400 for limit=%p', async (limit) => {
    const answer = await query(`/data?${new URLSearchParams({ source: uniqueSource(), limit })}`);
    expectProblem(answer, 400, 'invalid-parameter');
    expect(pointersOf(answer)).toEqual(['/limit']);
  });

  it('answers 400 for a garbage cursor', async () => {
    const answer = await query(`/data?${new URLSearchParams({ source: uniqueSource(), cursor: 'garbage!!' })}`);
    expectProblem(answer, 400, 'invalid-cursor');
    expect(pointersOf(answer)).toEqual(['/cursor']);
  });

  it('answers 400 for a well-formed base64url cursor the service did not issue', async () => {
    const forged = Buffer.from(JSON.stringify([1, new Date().toISOString(), randomUUID(), 'x'.repeat(16)]));
    const cursor = Buffer.concat([forged, Buffer.alloc(12)]).toString('base64url');
    const answer = await query(`/data?${new URLSearchParams({ source: uniqueSource(), cursor })}`);
    expectProblem(answer, 400, 'invalid-cursor');
  });

  it('answers 400 for a real cursor with any one character flipped', async () => {
    const source = uniqueSource();
    const cursor = await realCursor(source);
    // Every position but the last: the last base64url character may carry only padding bits, which decode to the
    // same bytes, so flipping it need not change the cursor at all.
    const positions = [0, 5, Math.floor(cursor.length / 2), cursor.length - 10, cursor.length - 2];
    for (const at of positions) {
      const original = cursor[at];
      const tampered = `${cursor.slice(0, at)}${original === 'A' ? 'B' : 'A'}${cursor.slice(at + 1)}`;
      const answer = await query(`/data?${new URLSearchParams({ source, limit: '1', cursor: tampered })}`);
      expectProblem(answer, 400, 'invalid-cursor');
    }
    expect((await query(`/data?${new URLSearchParams({ source, limit: '1', cursor })}`)).status).toBe(200);
  });

  it('answers 400 for a cursor reused with another source', async () => {
    const cursor = await realCursor(uniqueSource());
    const answer = await query(`/data?${new URLSearchParams({ source: uniqueSource(), limit: '1', cursor })}`);
    expectProblem(answer, 400, 'invalid-cursor');
  });

  it('answers 400 for from after to', async () => {
    const answer = await query(`/data?${new URLSearchParams({ from: isoAgo(1_000), to: isoAgo(60_000) })}`);
    expectProblem(answer, 400, 'invalid-parameter');
    expect(pointersOf(answer)).toEqual(['/from']);
  });

  it.each(['yesterday', '2026-01-31', '2026-01-31T12:00:00', '2026-02-30T00:00:00Z'])(
    'answers 400 for from=%p (not an RFC 3339 instant)',
    async (from) => {
      const answer = await query(`/data?${new URLSearchParams({ from })}`);
      expectProblem(answer, 400, 'invalid-parameter');
      expect(pointersOf(answer)).toEqual(['/from']);
    },
  );

  it('answers 400 for an unknown query parameter', async () => {
    const answer = await query(`/data?${new URLSearchParams({ source: uniqueSource(), sort: 'asc' })}`);
    expectProblem(answer, 400, 'invalid-parameter');
    expect(pointersOf(answer)).toEqual(['/sort']);
  });

  it('lists every bad query parameter at once', async () => {
    const answer = await query('/data?source=a%20b&limit=0&from=soon&page=2');
    expectProblem(answer, 400, 'invalid-parameter');
    expect(pointersOf(answer)).toEqual(['/from', '/limit', '/page', '/source']);
  });

  it.each([
    ['from in year 0000', { from: '0000-01-01T00:00:00Z' }],
    ['to with offset +20:00', { to: '2026-01-01T00:00:00+20:00' }],
  ])('answers 4xx, never 5xx, for %s (valid RFC 3339 that PostgreSQL cannot hold)', async (_, parameters) => {
    const answer = await query(`/data?${new URLSearchParams({ source: uniqueSource(), ...parameters })}`);
    expect(answer.status).toBeLessThan(500);
    expect([200, 400]).toContain(answer.status);
  });
});

/** The next_cursor of the first one-record page of a fresh source. */
async function realCursor(source: string): Promise<string> {
  const posted = await postJson(app, { records: [record(source), record(source), record(source)] });
  expect(posted.status).toBe(201);
  const page = await query(`/data?${new URLSearchParams({ source, limit: '1' })}`);
  const cursor = page.json.next_cursor;
  if (typeof cursor !== 'string') throw new Error(`expected a next_cursor, got ${JSON.stringify(page.json)}`);
  return cursor;
}

/** 30 February of the current year at noon UTC: matches the RFC 3339 pattern, but no such day exists. */
function thirtiethOfFebruary(): string {
  return `${new Date().getUTCFullYear()}-02-30T12:00:00Z`;
}

/** A body of exactly `size` bytes that starts like a record of `source`. */
function oversizedBody(source: string, size: number): Buffer {
  const body = Buffer.alloc(size, 'x');
  body.write(`{"source":"${source}","type":"reading","payload":{"filler":"`);
  return body;
}

const requestHead = (headers: Record<string, string>): string =>
  [
    'POST /data HTTP/1.1',
    'host: 127.0.0.1',
    'content-type: application/json',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    '',
    '',
  ].join('\r\n');

const chunk = (data: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);

/** Writes and waits for the socket to take the data, so that a slow reader slows the writer. */
function write(socket: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(data, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Opens a raw TCP connection, lets `feed` write whatever it likes (it can ask whether the response has arrived),
 * and resolves with the first complete HTTP response. Write errors after the response (the server closes) are
 * ignored: the response is what is tested.
 */
async function exchangeRaw(
  baseUrl: string,
  feed: (socket: Socket, isAnswered: () => boolean) => Promise<void>,
): Promise<Answer> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => undefined);
  let answered = false;
  const response = new Promise<Answer>((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      const parsed = parseResponse(buffer);
      if (parsed !== undefined) {
        answered = true;
        resolve(parsed);
      }
    });
    socket.on('close', () => reject(new Error(`connection closed before a full response: ${buffer.toString()}`)));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    await feed(socket, () => answered).catch((error: unknown) => {
      if (!answered) throw error;
    });
    return await response;
  } finally {
    socket.destroy();
  }
}

/** Parses one complete HTTP/1.1 response with a Content-Length, or undefined when more bytes are needed. */
function parseResponse(buffer: Buffer): Answer | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = buffer.subarray(0, end).toString('latin1').split('\r\n');
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const length = Number(headers.get('content-length') ?? 0);
  const body = buffer.subarray(end + 4);
  if (body.length < length) return undefined;
  const text = body.subarray(0, length).toString('utf8');
  return { status: Number(statusLine.split(' ')[1]), headers, json: text ? JSON.parse(text) : {} };
}
