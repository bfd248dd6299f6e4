/**
 * The shipped artefacts, as Knative runs them: dist/<function>.mjs started as real processes with a Knative-like
 * environment, probed, used, and stopped with SIGTERM mid-request (invariant 5). Needs `node esbuild.config.mjs`.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Database } from '#lib/db';
import { issuerEnv, OPEN_BUNDLE_ENV, testIssuer } from '../support/auth.ts';
import { createTestDatabase, testDatabaseUrl } from '../support/database.ts';
import {
  bundlePath,
  connectOutcome,
  freePort,
  type SpawnedProcess,
  sleep,
  spawnNode,
  waitForReady,
  withTimeout,
} from '../support/processes.ts';

const DRAIN_TIMEOUT_MS = 10_000;
const RUN = Math.random().toString(36).slice(2, 8);

interface Started {
  readonly name: string;
  readonly url: string;
  readonly service: string;
  readonly proc: SpawnedProcess;
  readonly readyMs: number;
}

const spawned: SpawnedProcess[] = [];

/** Spawns dist/<name>.mjs on a free port and waits (20 ms polls, 15 s at most) for /readyz 200. */
async function startBundle(name: 'ingest' | 'query', env: Record<string, string> = OPEN_BUNDLE_ENV): Promise<Started> {
  const script = bundlePath(name);
  const port = await freePort();
  const service = `bundle-test-${name}-${RUN}`;
  const proc = spawnNode(script, {
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: testDatabaseUrl(),
    K_SERVICE: service,
    K_REVISION: `${service}-00001`,
    LOG_LEVEL: 'info',
    DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
  });
  spawned.push(proc);
  const url = `http://127.0.0.1:${port}`;
  const readyMs = await waitForReady(`${url}/readyz`, {
    since: proc.startedAt,
    intervalMs: 20,
    timeoutMs: 15_000,
    process: proc,
  });
  return { name, url, service, proc, readyMs };
}

const logLines = (proc: SpawnedProcess): Array<Record<string, unknown>> =>
  proc.stdoutLines().map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`stdout line is not JSON: ${line}`);
    }
  });

const isMessage = (message: string) => (line: string) => {
  try {
    return (JSON.parse(line) as { msg?: unknown }).msg === message;
  } catch {
    return false;
  }
};

const isRunning = (proc: SpawnedProcess) => proc.child.exitCode === null && proc.child.signalCode === null;

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
});

describe('function bundles as processes', () => {
  let ingest: Started;
  let query: Started;
  let db: Database;

  beforeAll(async () => {
    db = createTestDatabase(2);
    // One after the other, so that each start-to-ready figure is the bundle's own.
    ingest = await startBundle('ingest');
    query = await startBundle('query');
  }, 40_000);
  afterAll(async () => {
    await Promise.all([ingest?.proc.kill(), query?.proc.kill()]);
    await db?.destroy();
  });

  it('become ready quickly (start-to-ready figures)', () => {
    for (const started of [ingest, query]) {
      console.log(`dist/${started.name}.mjs: spawn to first /readyz 200 in ${started.readyMs.toFixed(0)} ms`);
      expect(started.readyMs).toBeLessThan(15_000);
    }
  });

  it('store a record through ingest and read it back through query by id', async () => {
    const source = `bundle.${RUN}`;
    const posted = await fetch(`${ingest.url}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ source, type: 'reading', payload: { celsius: 20.5 } }),
    });
    expect(posted.status).toBe(201);
    const id = ((await posted.json()) as { records: Array<{ id: string }> }).records[0]?.id;
    expect(typeof id).toBe('string');
    const read = await fetch(`${query.url}/data/${id}`);
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id, source, type: 'reading', payload: { celsius: 20.5 } });
  });

  it('log JSON lines on stdout naming the Knative service and revision', async () => {
    // Access lines are buffered and written at least every 200 ms: give them that long to arrive.
    const deadline = Date.now() + 2_000;
    const hasAccessLines = () =>
      [ingest, query].every((started) => logLines(started.proc).some((line) => line.msg === 'request'));
    while (!hasAccessLines() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const started of [ingest, query]) {
      const lines = logLines(started.proc);
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line).toMatchObject({ service: started.service, revision: `${started.service}-00001` });
      }
      expect(lines.some((line) => line.msg === 'ready to serve')).toBe(true);
      expect(lines.some((line) => line.msg === 'request')).toBe(true);
    }
  });

  it('ingest: SIGTERM during a 1000-record batch still answers it 201, then exits 0 with a stopped line', async () => {
    const source = `bundle.drain.${RUN}`;
    const blocker = randomUUID();
    const ids = [blocker, ...Array.from({ length: 999 }, () => randomUUID())];
    const body = JSON.stringify({
      records: ids.map((id) => ({ id, source, type: 'reading', payload: { n: 1, text: 'x'.repeat(64) } })),
    });
    // An uncommitted claim of one of the batch's ids makes the batch's INSERT wait on that row: the request is
    // deterministically in flight, inside PostgreSQL, when SIGTERM arrives.
    const trx = await db.transaction();
    let released = false;
    try {
      await trx.raw('INSERT INTO record_ids (id, "timestamp") VALUES (?, now())', [blocker]);
      const answer = postRaw(ingest.url, '/data', body);
      await waitFor(
        async () => {
          const rows = await db.raw(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ? AND wait_event_type = 'Lock'`,
            [`${ingest.service}:ingest`],
          );
          return (rows.rows as Array<{ n: number }>)[0]?.n === 1;
        },
        5_000,
        'the batch never reached PostgreSQL',
      );

      const signalledAt = performance.now();
      ingest.proc.child.kill('SIGTERM');
      const draining = JSON.parse(await ingest.proc.waitForLine(isMessage('draining'), 2_000));
      expect(draining).toMatchObject({ reason: 'SIGTERM', in_flight: 1 });
      // Not ready and not accepting any more, but still running for the request in flight.
      expect(await connectOutcome(Number(new URL(ingest.url).port))).toBe('ECONNREFUSED');
      await sleep(300);
      expect(isRunning(ingest.proc)).toBe(true);

      await trx.rollback();
      released = true;
      const reply = await withTimeout(answer, 5_000, () => 'the in-flight batch was never answered');
      expect(reply.status).toBe(201);
      const written = (JSON.parse(reply.body) as { records: Array<{ id: string; status: string }> }).records;
      expect(written).toHaveLength(1000);
      expect(written.every((r) => r.status === 'created')).toBe(true);

      const exit = await ingest.proc.waitForExit(DRAIN_TIMEOUT_MS);
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
      expect(performance.now() - signalledAt).toBeLessThan(DRAIN_TIMEOUT_MS);
      const stopped = logLines(ingest.proc).find((line) => line.msg === 'stopped');
      expect(stopped).toMatchObject({ completed: true, abandoned: 0, service: ingest.service });

      const count = await db.raw('SELECT count(*)::int AS n FROM records WHERE source = ?', [source]);
      expect((count.rows as Array<{ n: number }>)[0]?.n).toBe(1000);
    } finally {
      if (!released) await trx.rollback();
    }
  }, 30_000);

  it('query: SIGTERM while a request is still arriving still answers it, then exits 0 with a stopped line', async () => {
    // The request's headers are in (so it is in flight) but its declared body is not complete yet.
    const { port } = new URL(query.url);
    const socket = connect(Number(port), '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      let received = '';
      const closed = new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString('utf8');
        });
        socket.once('close', () => resolve());
      });
      socket.write(
        'GET /data?source=nothing.here&limit=5 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n12345',
      );
      await sleep(100);

      const signalledAt = performance.now();
      query.proc.child.kill('SIGTERM');
      const draining = JSON.parse(await query.proc.waitForLine(isMessage('draining'), 2_000));
      expect(draining).toMatchObject({ reason: 'SIGTERM', in_flight: 1 });
      await sleep(300);
      expect(isRunning(query.proc)).toBe(true);

      socket.write('67890');
      await withTimeout(closed, 5_000, () => `no answer to the in-flight request: ${received}`);
      expect(received.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');

      const exit = await query.proc.waitForExit(DRAIN_TIMEOUT_MS);
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
      expect(performance.now() - signalledAt).toBeLessThan(DRAIN_TIMEOUT_MS);
      expect(logLines(query.proc).find((line) => line.msg === 'stopped')).toMatchObject({
        completed: true,
        abandoned: 0,
        service: query.service,
      });
    } finally {
      socket.destroy();
    }
  }, 30_000);
});

describe('migration bundle', () => {
  it('dist/migrate.mjs migrates the test database and exits 0', async () => {
    const proc = spawnNode(bundlePath('migrate'), {
      DATABASE_URL: testDatabaseUrl(),
      K_SERVICE: `bundle-test-migrate-${RUN}`,
      LOG_LEVEL: 'info',
    });
    spawned.push(proc);
    const exit = await proc.waitForExit(30_000);
    expect({ code: exit.code, stderr: proc.stderr() }).toEqual({ code: 0, stderr: '' });
    expect(logLines(proc).some((line) => line.msg === 'partitions maintained')).toBe(true);
  }, 40_000);
});

describe('invalid environment', () => {
  it.each(['ingest', 'query', 'migrate'])(
    'dist/%s.mjs exits non-zero at once and names every bad variable',
    async (name) => {
      const proc = spawnNode(bundlePath(name), { PORT: 'abc', HOST: '127.0.0.1', K_SERVICE: 'bundle-test-bad-env' });
      spawned.push(proc);
      const exit = await proc.waitForExit(5_000);
      expect(exit.code).not.toBe(0);
      expect(exit.code).not.toBeNull();
      expect(exit.afterMs).toBeLessThan(5_000);
      const stderr = proc.stderr();
      expect(stderr).toContain('PORT');
      expect(stderr).toContain('DATABASE_URL');
    },
    10_000,
  );
});

/** POST over a fresh connection; resolves with status and body whatever the status. */
function postRaw(base: string, path: string, body: string): Promise<{ status: number; body: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: url.pathname,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(message);
}

describe('the ingest bundle with access control on', () => {
  let ingest: Started;
  let db: Database;
  let token: string;

  beforeAll(async () => {
    db = createTestDatabase(2);
    const issuer = await testIssuer();
    token = await issuer.allAccess('bundle-test');
    // A short statement timeout, so that a write waiting on a lock fails fast (503) in the test below.
    ingest = await startBundle('ingest', { ...issuerEnv(issuer), DATABASE_STATEMENT_TIMEOUT_MS: '100' });
  }, 40_000);
  afterAll(async () => {
    await ingest?.proc.kill();
    await db?.destroy();
  });

  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(`${ingest.url}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('verifies bearer tokens: 401 without one, 201 with one', async () => {
    const body = { source: 'bundle.auth', type: 'reading', payload: { n: 1 } };
    const refused = await post(body, {});
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="data-service"');
    expect((await post(body, { authorization: `Bearer ${token}` })).status).toBe(201);
  });

  it('never writes a statement binding or payload to its logs, even for a failed insert', async () => {
    const marker = `secret-payload-${randomUUID()}`;
    const id = randomUUID();
    // An uncommitted claim of the same id from another session: the insert waits on it until its statement
    // timeout, and the failure (a 503) is logged with its cause.
    const connection = await db.client.acquireConnection();
    try {
      await connection.query('BEGIN');
      await connection.query(`INSERT INTO record_ids (id, "timestamp") VALUES ($1, now())`, [id]);
      const failed = await post(
        { id, source: 'bundle.secrets', type: 'reading', payload: { marker } },
        { authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
      );
      expect(failed.status).toBe(503);
    } finally {
      await connection.query('ROLLBACK');
      await db.client.releaseConnection(connection);
    }
    await waitForLogged(ingest.proc, (line) => line.level === 'error' && line.code === 'dependency-unavailable');
    const logged = logLines(ingest.proc).find((line) => line.code === 'dependency-unavailable');
    expect(JSON.stringify(logged)).toContain('statement timeout');
    expect(ingest.proc.stdout()).not.toContain(marker);
    expect(ingest.proc.stdout()).not.toContain('ds_insert_records');
  });
});

async function waitForLogged(proc: SpawnedProcess, match: (line: Record<string, unknown>) => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!logLines(proc).some(match)) {
    if (Date.now() > deadline) throw new Error(`no such log line within 5 s:\n${proc.stdout().slice(-2000)}`);
    await sleep(50);
  }
}
