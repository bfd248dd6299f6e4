/**
 * `GET /data/export` on real PostgreSQL (issue 13): NDJSON lines equal the list's records in the same order, with
 * the list's grants and parameter rules; a cut export resumed with `after` gets exactly the rest; the chunks are
 * read only as fast as the client takes them (a paused client stops the reading) and not at all once it left.
 *
 * The first app bounds pages (and export chunks) at 8 KiB, so a few dozen records already take several chunks;
 * the second is built here from functions/query/app.ts over a pool whose statements are counted.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { Database } from '#lib/db';
import { createSilentLogger } from '#lib/observability';
import { createRuntimeServer, type RuntimeServer } from '#lib/runtime';
import { createQueryApp, type QueryApp } from '../../functions/query/app.ts';
import { loadSourceRecords } from '../../scripts/bench/synthetic-records.ts';
import { getJson, isoAgo, postJson, startTestApp, type TestApp, testConfig, uniqueSource } from '../support/app.ts';
import { bearer } from '../support/auth.ts';
import { databaseAt, testDatabaseUrl } from '../support/database.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { LIST_MAX_BYTES: '8192' } });
});
afterAll(async () => {
  await app?.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

async function exportOf(parameters: Record<string, string>, headers?: Record<string, string>): Promise<Answer> {
  const answer = await fetch(`${app.queryUrl}/data/export?${new URLSearchParams(parameters)}`, {
    headers: headers ?? (await bearer()),
  });
  return { status: answer.status, headers: answer.headers, text: await answer.text() };
}

const linesOf = (text: string): Array<Record<string, unknown>> =>
  text === ''
    ? []
    : text
        .replace(/\n$/, '')
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);

/** Every record of a list walk by next_cursor, with the same filters. */
async function listed(parameters: Record<string, string>): Promise<Array<Record<string, unknown>>> {
  const records: Array<Record<string, unknown>> = [];
  let cursor: string | undefined;
  do {
    const page = await getJson(
      `${app.queryUrl}/data?${new URLSearchParams({ ...parameters, limit: '7', ...(cursor && { cursor }) })}`,
    );
    expect(page.status).toBe(200);
    records.push(...(page.json.records as Array<Record<string, unknown>>));
    cursor = (page.json.next_cursor as string | null) ?? undefined;
  } while (cursor !== undefined);
  return records;
}

describe('GET /data/export', () => {
  const source = uniqueSource('export');
  const type = `t.${source}`;
  beforeAll(async () => {
    // 45 records of varied size, pairs sharing a timestamp, two types.
    const records = Array.from({ length: 45 }, (_, i) => ({
      source,
      type: i % 3 === 0 ? type : 'reading',
      timestamp: isoAgo(120_000 - Math.floor(i / 2) * 1_000),
      payload: { i, text: 'x'.repeat((i * 977) % 3_000) },
    }));
    expect((await postJson(app, { records })).status).toBe(201);
  });

  it('streams the records as NDJSON, one a line, equal to the list in the same order', async () => {
    const answer = await exportOf({ source });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/x-ndjson');
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('content-length')).toBeNull();
    expect(answer.text.endsWith('\n')).toBe(true);
    const lines = linesOf(answer.text);
    expect(lines).toHaveLength(45);
    expect(lines).toEqual(await listed({ source }));
  });

  it('takes the list filters: type, from (inclusive) and to (exclusive)', async () => {
    const all = linesOf((await exportOf({ source })).text);
    const from = String(all[30]?.timestamp);
    const to = String(all[5]?.timestamp);
    for (const filter of [{ type }, { from }, { to }, { from, to, type }]) {
      const lines = linesOf((await exportOf({ source, ...filter })).text);
      expect({ filter, lines }).toEqual({ filter, lines: await listed({ source, ...filter }) });
    }
  });

  it('resumes after the last complete line of a cut export with exactly the rest', async () => {
    const whole = linesOf((await exportOf({ source })).text);
    // A real cut: the client reads a few lines and leaves.
    const response = await fetch(`${app.queryUrl}/data/export?source=${source}`, { headers: await bearer() });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let received = '';
    while ((received.match(/\n/g)?.length ?? 0) < 10) {
      const { value, done } = await reader.read();
      if (done) break;
      received += Buffer.from(value).toString('utf8');
    }
    await reader.cancel();
    // Only complete lines count: a partial last line is dropped and read again.
    const complete = linesOf(received.slice(0, received.lastIndexOf('\n') + 1));
    const last = complete.at(-1);
    const rest = linesOf((await exportOf({ source, after: `${last?.timestamp},${last?.id}` })).text);
    expect([...complete, ...rest]).toEqual(whole);
    expect(rest.length).toBeGreaterThan(0);
    // After the last record: nothing, and a clean end.
    const end = whole.at(-1);
    expect(await exportOf({ source, after: `${end?.timestamp},${end?.id}` })).toMatchObject({ status: 200, text: '' });
  });

  it('compresses the stream when the client accepts gzip', async () => {
    const plain = (await exportOf({ source })).text;
    // fetch decodes gzip itself; the header says it was sent compressed.
    const answer = await exportOf({ source }, { ...(await bearer()), 'accept-encoding': 'gzip' });
    expect(answer.headers.get('content-encoding')).toBe('gzip');
    expect(answer.text).toBe(plain);
  });

  it('enforces the list grants: 401 without a token, 403 for a source not granted, 403 without source unless read:*', async () => {
    const problem = async (parameters: Record<string, string>, headers: Record<string, string>) => {
      const answer = await exportOf(parameters, headers);
      return { status: answer.status, type: answer.headers.get('content-type'), text: answer.text };
    };
    expect((await problem({ source }, {})).status).toBe(401);
    const other = await bearer({ read: ['other-*'] });
    expect(await problem({ source }, other)).toMatchObject({ status: 403, type: 'application/problem+json' });
    expect(await problem({ type }, other)).toMatchObject({ status: 403, type: 'application/problem+json' });
    // A prefix grant reads the source; without a source it needs read:*.
    const prefix = await bearer({ read: ['export.*'] });
    expect(linesOf((await problem({ source }, prefix)).text)).toHaveLength(45);
    expect((await problem({ type }, prefix)).status).toBe(403);
    const everything = await bearer({ read: ['*'] });
    const byType = linesOf((await problem({ type }, everything)).text);
    expect(byType.map((r) => r.id)).toEqual((await listed({ source, type })).map((r) => r.id));
  });

  it.each([
    [{ after: 'not-a-position' }, '/after'],
    [{ after: `${new Date().toISOString()},not-a-uuid` }, '/after'],
    [{ from: 'yesterday' }, '/from'],
    [{ from: isoAgo(0), to: isoAgo(60_000) }, '/from'],
    [{ limit: '10' }, '/limit'],
    [{ cursor: 'abc' }, '/cursor'],
    [{ source: 'bad source' }, '/source'],
  ])('answers %j with a 400 problem naming %s', async (parameters, pointer) => {
    const answer = await exportOf({ source, ...parameters });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
    const body = JSON.parse(answer.text) as { errors: Array<{ pointer: string }> };
    expect(body.errors.map((e) => e.pointer)).toContain(pointer);
  });

  it('answers HEAD with the headers and no body', async () => {
    const answer = await fetch(`${app.queryUrl}/data/export?source=${source}`, {
      method: 'HEAD',
      headers: await bearer(),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/x-ndjson');
    expect(await answer.text()).toBe('');
  });
});

describe('GET /data/export reads only as fast as the client takes it', () => {
  const ROWS = 8_000;
  const source = uniqueSource('export-flow');
  let db: Database;
  let queryApp: QueryApp;
  let server: RuntimeServer;
  let url: string;
  let statements = 0;

  beforeAll(async () => {
    const client = new pg.Client({ connectionString: testDatabaseUrl() });
    await client.connect();
    try {
      // ~4.2 KB a record, 34 MB in all: far more than the socket buffers of a paused client.
      const endMs = Date.now() - 120_000;
      await loadSourceRecords(client, { source, count: ROWS, fillBytes: 4_000, endMs, spacingMs: 5, vacuum: false });
    } finally {
      await client.end();
    }
    db = databaseAt(testDatabaseUrl(), { poolMax: 4 });
    // Every keyset query of a chunk is one named statement on a pooled connection: count them.
    const pool = db.client as { acquireConnection(): Promise<{ query(...args: unknown[]): unknown }> };
    const acquire = pool.acquireConnection.bind(pool);
    const counted = new WeakSet<object>();
    pool.acquireConnection = async () => {
      const connection = await acquire();
      if (!counted.has(connection)) {
        counted.add(connection);
        const query = connection.query.bind(connection);
        connection.query = (...args: unknown[]) => {
          if (String((args[0] as { name?: string } | undefined)?.name ?? '').startsWith('list-records')) statements++;
          return query(...args);
        };
      }
      return connection;
    };
    const config = testConfig({ LIST_MAX_BYTES: '65536' });
    queryApp = createQueryApp(config, { db }, createSilentLogger());
    server = createRuntimeServer({
      ...config.http,
      functionName: 'query',
      handler: queryApp.handler,
      logger: createSilentLogger(),
    });
    url = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}/data/export?source=${source}`;
  }, 60_000);

  afterAll(async () => {
    await server?.drain(5_000);
    await queryApp?.close();
    await db?.destroy();
  });

  const open = (): Promise<{ response: IncomingMessage; close: () => void }> =>
    new Promise((resolve, reject) => {
      const request = httpRequest(url, (response) => resolve({ response, close: () => request.destroy() }));
      request.on('error', reject);
      request.end();
    });
  const settled = async (): Promise<number> => {
    // Stable for half a second: the reading has stopped.
    for (let previous = -1; ; ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (statements === previous) return statements;
      previous = statements;
    }
  };

  it('stops reading while the client does not read, goes on when it reads again, and ends with every record', async () => {
    const { response } = await open();
    response.pause();
    const before = statements;
    const whilePaused = (await settled()) - before;
    // ~4.2 KB × 15 records a 64 KiB chunk: ~530 chunks in all; a paused client holds at most its socket buffers.
    expect(whilePaused).toBeGreaterThan(0);
    expect(whilePaused).toBeLessThan(530 / 2);
    let lines = 0;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      for (let at = chunk.indexOf('\n'); at >= 0; at = chunk.indexOf('\n', at + 1)) lines++;
    });
    response.resume();
    await new Promise((resolve) => response.once('end', resolve));
    expect(response.complete).toBe(true);
    expect(lines).toBe(ROWS);
    expect(statements - before).toBeGreaterThan(whilePaused * 1.5);
  }, 60_000);

  it('stops reading when the client leaves mid-export', async () => {
    const before = statements;
    const { response, close } = await open();
    await new Promise((resolve) => response.once('data', resolve));
    close();
    // The reading stops (what the socket buffers took before the close was read, no more), far short of the end,
    // and the response is over: nothing in flight on the server.
    const read = (await settled()) - before;
    expect(read).toBeLessThan(530 / 2);
    expect(server.inFlight()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(statements - before).toBe(read);
  }, 30_000);
});
