/**
 * What a POST body may look like beyond one JSON document: compressed (Content-Encoding gzip, deflate, br, zstd,
 * decoded while it streams in, the cap applied to the decoded size too) and NDJSON (one record a line). Over real
 * HTTP to the ingest function as its composition root builds it.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getJson, startTestApp, type TestApp, uniqueSource, withToken } from '../support/app.ts';

const LIMIT = 64 * 1024;
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ bodyLimitBytes: LIMIT });
});
afterAll(async () => {
  await app.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly json: Record<string, unknown>;
}

/** POSTs exactly these bytes with these headers (node:http, so nothing is added or re-encoded). */
async function post(body: Buffer, headers: Record<string, string>): Promise<Answer> {
  const url = new URL(`${app.ingestUrl}/data`);
  const all = await withToken({ 'content-length': String(body.length), ...headers });
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: '/data', method: 'POST', headers: all }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? JSON.parse(text) : {} });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const record = (source: string, n = 1) => ({ id: randomUUID(), source, type: 'reading', payload: { n } });
const JSON_TYPE = { 'content-type': 'application/json' };
const NDJSON_TYPE = { 'content-type': 'application/x-ndjson' };

describe('compressed bodies', () => {
  const encoders: Array<[string, (input: Buffer) => Buffer]> = [
    ['gzip', (b) => zlib.gzipSync(b)],
    ['deflate', (b) => zlib.deflateSync(b)],
    ['br', (b) => zlib.brotliCompressSync(b)],
    ...(typeof zlib.zstdCompressSync === 'function'
      ? [['zstd', (b: Buffer) => zlib.zstdCompressSync(b)] as [string, (input: Buffer) => Buffer]]
      : []),
  ];

  it.each(encoders)('accepts a %s body and stores what it decodes to', async (encoding, encode) => {
    const source = uniqueSource(encoding);
    const records = [record(source, 1), record(source, 2)];
    const answer = await post(encode(Buffer.from(JSON.stringify({ records }))), {
      ...JSON_TYPE,
      'content-encoding': encoding,
    });
    expect(answer.status).toBe(201);
    const listed = await getJson(`${app.queryUrl}/data?source=${source}`);
    expect((listed.json.records as Array<{ id: string }>).map((r) => r.id).sort()).toEqual(
      records.map((r) => r.id).sort(),
    );
  });

  it('refuses with 413, without inflating it all, a small body that decodes past the limit', async () => {
    // 16 MiB of spaces gzip to about 16 KiB: below the limit as sent, 256 times above it once decoded.
    const bomb = zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(LIMIT);
    const answer = await post(bomb, { ...JSON_TYPE, 'content-encoding': 'gzip' });
    expect(answer.status).toBe(413);
    expect(answer.json.detail).toContain('(sent or decoded)');
  });

  it('answers 415 naming the supported codings for an unsupported Content-Encoding', async () => {
    for (const encoding of ['compress', 'gzip, br', 'rot13']) {
      const answer = await post(Buffer.from('{}'), { ...JSON_TYPE, 'content-encoding': encoding });
      expect({ encoding, status: answer.status }).toEqual({ encoding, status: 415 });
      expect(answer.headers['accept-encoding']).toContain('gzip');
      expect(answer.json.type).toBe('https://data-service.dev/problems/unsupported-media-type');
    }
  });

  it('answers 400 for a body that is not valid in its encoding, and accepts identity', async () => {
    const broken = await post(Buffer.from('this is not gzip at all'), { ...JSON_TYPE, 'content-encoding': 'gzip' });
    expect(broken.status).toBe(400);
    expect(broken.json.detail).toBe('The body is not valid gzip data.');
    const truncated = zlib.gzipSync(Buffer.from(JSON.stringify(record(uniqueSource())))).subarray(0, 20);
    expect((await post(truncated, { ...JSON_TYPE, 'content-encoding': 'gzip' })).status).toBe(400);
    const plain = Buffer.from(JSON.stringify(record(uniqueSource())));
    expect((await post(plain, { ...JSON_TYPE, 'content-encoding': 'identity' })).status).toBe(201);
  });
});

describe('NDJSON bodies', () => {
  const ndjson = (lines: unknown[], eol = '\n') => Buffer.from(lines.map((l) => JSON.stringify(l)).join(eol) + eol);

  it('stores one record a line as one atomic batch, answering in line order', async () => {
    const source = uniqueSource('ndjson');
    const records = [record(source, 1), record(source, 2), record(source, 3)];
    const answer = await post(ndjson(records), NDJSON_TYPE);
    expect(answer.status).toBe(201);
    expect(answer.json.records).toEqual(records.map((r) => ({ id: r.id, status: 'created' })));
    // CRLF line ends, no final newline, and gzip on top.
    const more = [record(source, 4), record(source, 5)];
    const crlf = Buffer.from(more.map((l) => JSON.stringify(l)).join('\r\n'));
    const gzipped = await post(zlib.gzipSync(crlf), { ...NDJSON_TYPE, 'content-encoding': 'gzip' });
    expect(gzipped.status).toBe(201);
    expect((await getJson(`${app.queryUrl}/data?source=${source}`)).json.records).toHaveLength(5);
  });

  it('points validation errors at the line: /records/<line-1>/<field>, and stores nothing', async () => {
    const source = uniqueSource('ndjson');
    const answer = await post(
      ndjson([record(source), { ...record(source), type: 'bad type!' }, record(source)]),
      NDJSON_TYPE,
    );
    expect(answer.status).toBe(422);
    expect(answer.json.errors).toEqual([expect.objectContaining({ pointer: '/records/1/type' })]);
    expect((await getJson(`${app.queryUrl}/data?source=${source}`)).json.records).toEqual([]);
  });

  it('answers 400 naming the line that is not JSON, or empty', async () => {
    const source = uniqueSource('ndjson');
    const bad = Buffer.from(`${JSON.stringify(record(source))}\n{"source": oops}\n`);
    const answer = await post(bad, NDJSON_TYPE);
    expect(answer.status).toBe(400);
    expect(answer.json.detail).toMatch(/^Line 2 is not valid JSON/);
    expect(answer.json.errors).toEqual([{ pointer: '/records/1', detail: 'line 2' }]);
    const gap = await post(
      Buffer.from(`${JSON.stringify(record(source))}\n\n${JSON.stringify(record(source))}\n`),
      NDJSON_TYPE,
    );
    expect(gap.status).toBe(400);
    expect(gap.json.detail).toBe('Line 2 is empty.');
    expect((await post(Buffer.from('\n'), NDJSON_TYPE)).status).toBe(400);
  });

  it('applies the batch limit to the number of lines', async () => {
    const source = uniqueSource('ndjson');
    const lines = Array.from({ length: 1001 }, () => ({ source, type: 't', payload: {} }));
    const big = await startTestApp({ bodyLimitBytes: 1024 * 1024 });
    try {
      const url = `${big.ingestUrl}/data`;
      const response = await fetch(url, {
        method: 'POST',
        headers: await withToken(NDJSON_TYPE),
        body: lines.map((l) => JSON.stringify(l)).join('\n'),
      });
      expect(response.status).toBe(422);
      expect(((await response.json()) as { errors: Array<{ pointer: string }> }).errors[0]?.pointer).toBe('/records');
    } finally {
      await big.close();
    }
  });

  it('still refuses other media types with 415 naming both', async () => {
    const answer = await post(Buffer.from('a,b\n1,2\n'), { 'content-type': 'text/csv' });
    expect(answer.status).toBe(415);
    expect(answer.json.detail).toBe(
      'Content-Type text/csv is not supported; send application/json or application/x-ndjson.',
    );
  });
});

describe('compressed answers', () => {
  it('compresses a large list page for a client that accepts br or gzip, and never a record (it has an ETag)', async () => {
    const source = uniqueSource('gzip-out');
    const records = Array.from({ length: 100 }, (_, n) => ({
      ...record(source, n),
      payload: { n, text: 'x'.repeat(200) },
    }));
    expect((await post(Buffer.from(JSON.stringify({ records })), JSON_TYPE)).status).toBe(201);
    const url = new URL(`${app.queryUrl}/data?source=${source}`);
    const raw = async (accept: string | undefined, path = `${url.pathname}${url.search}`) => {
      const headers = await withToken(accept === undefined ? {} : { 'accept-encoding': accept });
      return new Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }>(
        (resolve, reject) => {
          const req = request({ host: url.hostname, port: url.port, path, headers }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
          });
          req.on('error', reject);
          req.end();
        },
      );
    };
    const plain = await raw(undefined);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toContain('Accept-Encoding');
    const br = await raw('gzip, deflate, br');
    expect(br.headers['content-encoding']).toBe('br');
    expect(zlib.brotliDecompressSync(br.body).equals(plain.body)).toBe(true);
    expect(br.body.length).toBeLessThan(plain.body.length / 4);
    const gz = await raw('gzip;q=1, br;q=0');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(gz.body).equals(plain.body)).toBe(true);
    expect((await raw('identity')).headers['content-encoding']).toBeUndefined();
    const one = await raw('gzip, br', `/data/${records[0]?.id}`);
    expect(one.headers['content-encoding']).toBeUndefined();
    expect(one.headers.etag).toBeDefined();
  });
});
