/**
 * Faults of the archive (issue 14), with the real archive job (`functions/archive/main.ts`) as a process, real
 * PostgreSQL and the real S3 server:
 * - S3 stopped while a day is being uploaded: the job fails, no manifest, the day is not verified and retention
 *   drops nothing; with S3 back (empty: moto keeps nothing across a restart) the next run notices the recorded
 *   objects are gone, uploads them again, verifies, and only then retention drops the day.
 * - The job killed (SIGKILL) in the middle of a multipart upload: no manifest, an incomplete multipart upload
 *   left behind, nothing dropped; the next run aborts the stale upload, keeps the objects that were complete,
 *   resumes after them and verifies.
 * The corrupted-object case needs no stopped service: test/integration/archive.test.ts.
 */
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createObjectStore, type ObjectStore } from '#lib/archive';
import { type Database, listPartitions, maintainPartitions, partitionName } from '#lib/db';
import { run, waitFor } from '../../scripts/processes.ts';
import { DAY, startOfDay, testArchiveConfig, writeDay } from '../support/archive.ts';
import { databaseAt } from '../support/database.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';
import { ROOT, spawnNode } from '../support/processes.ts';
import { restoreServices, services } from './support.ts';

const NOW = Date.now();
const TODAY = startOfDay(NOW);
const ROWS = 60_000;
const PAYLOAD_BYTES = 1_000;
const config = testArchiveConfig({ objectRows: 20_000, rowGroupRows: 5_000 });
const retention = { pastDays: 7, aheadDays: 1, retentionDays: 31, idempotencyTtlHours: 24, requireArchive: true };
let database: PrivateDatabase;
let db: Database;
let store: ObjectStore;

beforeAll(async () => {
  database = await createPrivateDatabase('archivefault');
  db = databaseAt(database.url, { poolMax: 4, statementTimeoutMs: 120_000 });
  await maintainPartitions(db, { pastDays: 45, aheadDays: 1, retentionDays: 0, idempotencyTtlHours: 24 }, NOW);
  store = createObjectStore(config);
}, 60_000);
afterAll(async () => {
  await restoreServices('s3');
  store?.close();
  await db?.destroy();
  await database?.drop();
});

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const jobEnv = () => ({
  ...process.env,
  DATABASE_URL: database.url,
  ARCHIVE_PREFIX: config.prefix,
  ARCHIVE_OBJECT_ROWS: String(config.objectRows),
  ARCHIVE_ROW_GROUP_ROWS: String(config.rowGroupRows),
  ARCHIVE_AFTER_DAYS: String(config.afterDays),
  LOG_LEVEL: 'info',
});
/** Runs `npm run archive -- --day` to completion; resolves with its exit code and its log lines. */
async function archiveJob(day: string) {
  const result = await run(process.execPath, ['functions/archive/main.ts', 'archive', '--day', day], {
    timeoutMs: 300_000,
    env: jobEnv(),
    cwd: ROOT,
  });
  const lines = result.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { exitCode: result.exitCode, lines, stderr: result.stderr };
}
const uploadsUnder = async (prefix: string) =>
  (await store.client.send(new ListMultipartUploadsCommand({ Bucket: config.bucket, Prefix: prefix }))).Uploads ?? [];
const state = async (day: string) => db('archive_days').where({ day }).first();
const droppedBy = async () => (await maintainPartitions(db, retention, NOW)).dropped;

it('S3 stopped during an archive: nothing dropped; the next run re-uploads what S3 lost and verifies', async () => {
  const dayMs = TODAY - 36 * DAY;
  const day = dayOf(dayMs);
  await writeDay(db, dayMs, ROWS, { payloadBytes: PAYLOAD_BYTES });
  const job = spawnNode(`${ROOT}/functions/archive/main.ts`, jobEnv(), ['archive', '--day', day]);
  try {
    // Once the second object's upload has begun, the first is complete and recorded: stop S3 under the job.
    await waitFor(
      'the second object upload',
      120_000,
      async () =>
        (await db('archive_objects').where({ day })).length >= 1 &&
        (await uploadsUnder(store.dayPrefix(day))).length > 0
          ? true
          : undefined,
      100,
    );
    await services('down', 's3');
    const exit = await job.exited;
    expect(exit.code).toBe(1);
  } finally {
    await job.kill();
    await services('up', 's3');
  }
  expect(await state(day)).toMatchObject({ status: 'uploading', last_error: expect.any(String) });
  expect(await store.getText(store.manifestKey(day))).toBeUndefined();
  expect(await droppedBy()).not.toContain(partitionName(dayMs));

  const rerun = await archiveJob(day);
  expect(rerun.exitCode).toBe(0);
  expect(await state(day)).toMatchObject({ status: 'verified', rows: String(ROWS), objects: 3 });
  const outcome = rerun.lines.find((l) => l.msg === 'archive verified');
  // moto came back empty, so every object was uploaded again, including the one recorded before the outage.
  expect(outcome).toMatchObject({ day, rows: ROWS, objects: 3, uploaded: 3 });
  expect(await droppedBy()).toContain(partitionName(dayMs));
  expect(await listPartitions(db)).not.toContain(partitionName(dayMs));
}, 300_000);

it('the job killed mid-upload: no manifest, nothing dropped; the next run aborts the stale upload and resumes', async () => {
  const dayMs = TODAY - 37 * DAY;
  const day = dayOf(dayMs);
  await writeDay(db, dayMs, ROWS, { payloadBytes: PAYLOAD_BYTES });
  const job = spawnNode(`${ROOT}/functions/archive/main.ts`, jobEnv(), ['archive', '--day', day]);
  try {
    await waitFor(
      'an object upload after the first',
      120_000,
      async () =>
        (await db('archive_objects').where({ day })).length >= 1 &&
        (await uploadsUnder(store.dayPrefix(day))).length > 0
          ? true
          : undefined,
      100,
    );
    job.child.kill('SIGKILL');
    await job.exited;
  } finally {
    await job.kill();
  }
  const completeBefore = (await db('archive_objects').where({ day })).length;
  expect(completeBefore).toBeGreaterThanOrEqual(1);
  expect(completeBefore).toBeLessThan(3);
  expect(await uploadsUnder(store.dayPrefix(day))).not.toHaveLength(0);
  expect(await store.getText(store.manifestKey(day))).toBeUndefined();
  expect((await state(day))?.status).toBe('uploading');
  expect(await droppedBy()).not.toContain(partitionName(dayMs));

  const rerun = await archiveJob(day);
  expect(rerun.exitCode).toBe(0);
  expect(rerun.lines.find((l) => l.msg === 'aborted multipart uploads left by an interrupted run')).toMatchObject({
    aborted: 1,
  });
  expect(rerun.lines.find((l) => l.msg === 'archive verified')).toMatchObject({
    rows: ROWS,
    objects: 3,
    uploaded: 3 - completeBefore,
  });
  expect(await uploadsUnder(store.dayPrefix(day))).toHaveLength(0);
  expect(await droppedBy()).toContain(partitionName(dayMs));
}, 300_000);
