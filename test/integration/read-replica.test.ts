/**
 * A real read replica (`services:up -- replica`: pg_basebackup + standby.signal of the services' PostgreSQL) with
 * its replay paused (`pg_wal_replay_pause()`), so it lags on purpose: a GET by id right after a 201 still answers
 * 200 (a replica miss is asked of the primary), a list page may be stale but is never cached under the newer
 * version, and once replay resumes the list shows the record. Lists say how stale they may be (`Data-Staleness`,
 * from the query function's lag probe): about nothing while the replica keeps up, at least the age of the write it
 * lacks while it is paused, and the primary is read instead once that exceeds DATABASE_READ_MAX_STALENESS_SECONDS;
 * with the primary out of reach too, the replica's page says `unknown`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createRecordReader, type Database } from '#lib/db';
import { ROOT, run } from '../../scripts/processes.ts';
import { startTestApp, type TestApp, uniqueSource } from '../support/app.ts';
import { testIssuer } from '../support/auth.ts';
import { databaseAt } from '../support/database.ts';

let replicaUrl: string;
let startedReplica = false;
let app: TestApp;
let replica: pg.Client;
let replicaDb: Database;
let token: string;

interface Listed {
  readonly status: number;
  readonly ids: string[];
  readonly staleness: string | null;
}

/** A list page of the app: its status, the ids on it and its Data-Staleness header. */
async function listOf(target: TestApp, source: string): Promise<Listed> {
  const response = await fetch(`${target.queryUrl}/data?source=${source}&limit=10`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = (await response.json()) as { records?: Array<{ id: string }> };
  return {
    status: response.status,
    ids: (body.records ?? []).map((r) => r.id),
    staleness: response.headers.get('data-staleness'),
  };
}

/** Polls until `done` holds for a list page of the app (or fails with the last one seen). */
async function listUntil(
  target: TestApp,
  source: string,
  done: (page: Listed) => boolean,
  timeoutMs = 15_000,
): Promise<Listed> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const page = await listOf(target, source);
    if (page.status === 200 && done(page)) return page;
    if (Date.now() > deadline)
      throw new Error(`no list page as expected within ${timeoutMs} ms; last ${JSON.stringify(page)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POSTs one record of `source` and returns its id and when its 201 arrived (after its commit). */
async function write(source: string): Promise<{ id: string; acknowledgedAt: number }> {
  const posted = await fetch(`${app.ingestUrl}/data`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source, type: 'reading', payload: { n: 1 } }),
  });
  expect(posted.status).toBe(201);
  const id = ((await posted.json()) as { records: Array<{ id: string }> }).records[0]?.id ?? '';
  return { id, acknowledgedAt: Date.now() };
}

/** The query function's data_service_replica_lag_seconds, as a scrape would read it. */
async function lagMetric(target: TestApp): Promise<number> {
  const text = await target.queryMetrics.registry.getSingleMetricAsString('data_service_replica_lag_seconds');
  const value = /^data_service_replica_lag_seconds\{[^}]*\} (\S+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error(`no sample in:\n${text}`);
  return value === '+Inf' ? Number.POSITIVE_INFINITY : Number(value);
}

/**
 * Waits until the standby has replayed everything the primary had written when it was asked. Other suites write
 * to the same cluster meanwhile (the storage plans load a million rows), so the wait is generous.
 */
async function caughtUp(): Promise<void> {
  const primary = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await primary.connect();
  try {
    const { rows } = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const lsn = rows[0]?.lsn ?? '0/0';
    for (let i = 0; i < 1200; i++) {
      const done = await replica.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]);
      if (done.rows[0]?.ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the standby did not replay up to ${lsn} within 60 s`);
  } finally {
    await primary.end();
  }
}

beforeAll(async () => {
  const status = await run(process.execPath, ['scripts/services.ts', 'status', 'replica'], {
    cwd: ROOT,
    timeoutMs: 30_000,
  });
  startedReplica = !status.stdout.includes('replica running');
  const up = await run(process.execPath, ['scripts/services.ts', 'up', 'replica'], { cwd: ROOT, timeoutMs: 120_000 });
  if (up.exitCode !== 0) throw new Error(`services up replica failed: ${up.stderr}`);
  const read = /^export TEST_DATABASE_READ_URL=(.+)$/m.exec(up.stdout)?.[1];
  if (read === undefined) throw new Error(`no TEST_DATABASE_READ_URL in:\n${up.stdout}`);
  replicaUrl = read;
  replica = new pg.Client({ connectionString: replicaUrl });
  await replica.connect();
  await caughtUp(); // the migrations the suite applied to the primary
  replicaDb = databaseAt(replicaUrl, { applicationName: 'tests:replica' });
  app = await startTestApp({ readDatabaseUrl: replicaUrl, redis: true });
  token = await (await testIssuer()).allAccess('replica');
}, 180_000);

afterAll(async () => {
  await replica?.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
  await replica?.end();
  await replicaDb?.destroy();
  await app?.close();
  if (startedReplica)
    await run(process.execPath, ['scripts/services.ts', 'down', 'replica'], { cwd: ROOT, timeoutMs: 60_000 });
}, 60_000);

describe('a read replica that lags', () => {
  it('still answers a GET after a 201, and never caches a stale list page as current', async () => {
    const source = uniqueSource('replica');
    const token = await (await testIssuer()).allAccess('replica');
    const auth = { authorization: `Bearer ${token}` };
    const list = async () => {
      const response = await fetch(`${app.queryUrl}/data?source=${source}&limit=10`, { headers: auth });
      return ((await response.json()) as { records: Array<{ id: string }> }).records.map((r) => r.id);
    };
    expect(await list()).toEqual([]); // a first page of the empty source, read (and cached if pages were cached)

    await replica.query('SELECT pg_wal_replay_pause()');
    const posted = await fetch(`${app.ingestUrl}/data`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ source, type: 'reading', payload: { n: 1 } }),
    });
    expect(posted.status).toBe(201);
    const id = ((await posted.json()) as { records: Array<{ id: string }> }).records[0]?.id ?? '';

    // The replica really lags: it does not have the record.
    expect(await createRecordReader(replicaDb).findById(id)).toBeUndefined();
    // Read-your-writes: the GET is answered from the primary.
    const got = await fetch(`${app.queryUrl}/data/${id}`, { headers: auth });
    expect(got.status).toBe(200);
    expect(((await got.json()) as { id: string }).id).toBe(id);
    // The list reads the replica: stale while it lags.
    expect(await list()).toEqual([]);

    await replica.query('SELECT pg_wal_replay_resume()');
    await caughtUp();
    // Nothing stale was kept: the next page read shows the record at once.
    expect(await list()).toEqual([id]);
  }, 150_000);
});

// A caught-up replica's bound is the age of the last probe (they run a second apart) plus a round trip or two.
const FRESH_SECONDS = 1.5;

describe('lists over a replica say how stale they may be', () => {
  it('about nothing while it keeps up; at least the age of the write it lacks while paused; fresh again after', async () => {
    const source = uniqueSource('staleness');
    const fresh = await listUntil(app, source, (page) => Number(page.staleness) < FRESH_SECONDS);
    expect(fresh.staleness).toMatch(/^\d+(\.\d{1,3})?$/);

    await replica.query('SELECT pg_wal_replay_pause()');
    try {
      const { id, acknowledgedAt } = await write(source);
      await new Promise((r) => setTimeout(r, 2_500));
      const askedAt = Date.now();
      const stale = await listOf(app, source);
      expect(stale.status).toBe(200);
      // Read from the replica, which lacks the record...
      expect(stale.ids).toEqual([]);
      // ...and says it may trail by at least as long as the record has been committed (never understated).
      expect(Number(stale.staleness)).toBeGreaterThanOrEqual((askedAt - acknowledgedAt) / 1000);
      expect(await lagMetric(app)).toBeGreaterThanOrEqual((askedAt - acknowledgedAt) / 1000);
      expect(app.config.database.readMaxStalenessSeconds).toBe(30); // the default: still read from the replica
      // The export reads the replica too, and says so before its first line.
      const exported = await fetch(`${app.queryUrl}/data/export?source=${source}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(exported.status).toBe(200);
      expect(Number(exported.headers.get('data-staleness'))).toBeGreaterThanOrEqual((askedAt - acknowledgedAt) / 1000);
      expect(await exported.text()).toBe('');

      await replica.query('SELECT pg_wal_replay_resume()');
      await caughtUp();
      const after = await listUntil(app, source, (page) => Number(page.staleness) < FRESH_SECONDS);
      expect(after.ids).toEqual([id]);
      expect(await lagMetric(app)).toBeLessThan(FRESH_SECONDS + 1);
    } finally {
      await replica.query('SELECT pg_wal_replay_resume()');
    }
  }, 120_000);

  it('reads the primary once the replica may trail by more than DATABASE_READ_MAX_STALENESS_SECONDS', async () => {
    const strict = await startTestApp({
      readDatabaseUrl: replicaUrl,
      env: { DATABASE_READ_MAX_STALENESS_SECONDS: '2' },
    });
    try {
      const source = uniqueSource('strict');
      await listUntil(strict, source, (page) => Number(page.staleness) < FRESH_SECONDS);
      await replica.query('SELECT pg_wal_replay_pause()');
      const { id, acknowledgedAt } = await write(source);
      // At first the replica is within the bound: its page lacks the record and says it may be stale.
      const early = await listOf(strict, source);
      if (early.ids.length === 0) expect(Number(early.staleness)).toBeGreaterThan(0);
      // Past the bound the page comes from the primary: the record, and nothing stale about it.
      const late = await listUntil(strict, source, (page) => page.ids.length > 0);
      expect(late).toEqual({ status: 200, ids: [id], staleness: '0' });
      expect(Date.now() - acknowledgedAt).toBeGreaterThan(1_000);
      const reads = await strict.queryMetrics.registry.getSingleMetricAsString('data_service_list_reads_total');
      expect(reads).toMatch(/database="primary"[^\n]* [1-9]/);
      expect(reads).toMatch(/database="replica"[^\n]* [1-9]/);
    } finally {
      await replica.query('SELECT pg_wal_replay_resume()');
      await strict.close();
    }
    await caughtUp();
  }, 120_000);

  it('says unknown when neither the probe nor a fallback can tell (the primary out of reach)', async () => {
    // The query function's primary is a closed port: the probe learns nothing, and lists stay on the replica
    // rather than failing on the primary, saying they cannot bound their staleness. Ingest writes as usual.
    const blind = await startTestApp({
      readDatabaseUrl: replicaUrl,
      queryDatabaseUrl: 'postgres://postgres@127.0.0.1:1/data_service_test',
    });
    try {
      const source = uniqueSource('blind');
      const page = await listUntil(blind, source, (p) => p.staleness === 'unknown', 10_000);
      expect(page.ids).toEqual([]);
      expect(await lagMetric(blind)).toBe(Number.POSITIVE_INFINITY);
    } finally {
      await blind.close();
    }
  }, 60_000);
});
