/**
 * A real read replica (`services:up -- replica`: pg_basebackup + standby.signal of the services' PostgreSQL) with
 * its replay paused (`pg_wal_replay_pause()`), so it lags on purpose: a GET by id right after a 201 still answers
 * 200 (a replica miss is asked of the primary), a list page may be stale but is never cached under the newer
 * version, and once replay resumes the list shows the record.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createDatabase, createRecordReader, type Database } from '#lib/db';
import { ROOT, run } from '../../scripts/processes.ts';
import { startTestApp, type TestApp, uniqueSource } from '../support/app.ts';
import { testIssuer } from '../support/auth.ts';

let replicaUrl: string;
let startedReplica = false;
let app: TestApp;
let replica: pg.Client;
let replicaDb: Database;

/** Waits until the standby has replayed everything the primary had written when it was asked. */
async function caughtUp(): Promise<void> {
  const primary = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await primary.connect();
  try {
    const { rows } = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const lsn = rows[0]?.lsn ?? '0/0';
    for (let i = 0; i < 200; i++) {
      const done = await replica.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]);
      if (done.rows[0]?.ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the standby did not replay up to ${lsn} within 10 s`);
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
  replicaDb = createDatabase({
    url: replicaUrl,
    poolMax: 2,
    connectTimeoutMs: 2_000,
    statementTimeoutMs: 10_000,
    applicationName: 'tests:replica',
  });
  app = await startTestApp({ readDatabaseUrl: replicaUrl, redis: true });
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
  }, 60_000);
});
