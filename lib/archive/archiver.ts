/**
 * Archiving a day partition to S3, verifying it, and restoring it (issue 14).
 *
 * A day goes through `uploading` → `uploaded` → `verified` in `archive_days` (migration 0009); retention drops
 * only `verified` days. Every step is safe to repeat and to interrupt:
 * - Rows leave PostgreSQL through a server-side cursor in primary-key order, a few thousand at a time, and go
 *   into Parquet row groups that are streamed into a multipart upload: memory holds one row group and two
 *   upload parts, never a day.
 * - A day is cut into objects of ARCHIVE_OBJECT_ROWS rows. Each object is recorded in `archive_objects` with
 *   its size, SHA-256, figures and the last key it holds once its upload completed; a rerun keeps the recorded
 *   objects that S3 still has at their recorded size and carries on after the last one (the partition does not
 *   change: an archived day is older than the write window, which the configuration enforces).
 * - Verification downloads every object, checks its SHA-256, parses it with a Parquet reader and compares its
 *   figures (count, id range, checksum) with the recorded ones, and the objects' sum with the partition's own
 *   figures computed by PostgreSQL. Only then is the manifest written, read back and compared, and the day
 *   marked `verified`. A failed verification forgets the day's objects, so the next run uploads them again.
 * Runs on one day are serialised by a per-day advisory lock; a second archiver skips a day that is locked.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Knex } from 'knex';
import type { ArchiveConfig } from '#lib/config';
import { dueDays, listPartitions, partitionName } from '#lib/db';
import type { ObjectStore } from './object-store.ts';
import { ArchiveFileWriter, openArchiveFile, ROW_GROUP_MAX_BYTES } from './parquet.ts';
import {
  type ArchivedRow,
  describeFigures,
  FiguresAccumulator,
  figuresFrom,
  figuresSql,
  microsToIso,
  ROW_SELECT,
  type RowFigures,
  rowFrom,
  sameFigures,
} from './row-format.ts';

const DAY_MS = 86_400_000;
/** Advisory lock space of the archiver (the second key is the day number): one run per day at a time. */
const ARCHIVE_LOCK = 4_242_002;
/** Rows per FETCH from the cursor. */
const FETCH_ROWS = 2_000;
/** Rows per INSERT when a day is restored. */
const RESTORE_BATCH = 2_000;
const PARQUET = 'application/vnd.apache.parquet';
export const MANIFEST_FORMAT = 'data-service-archive/1';

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ArchiveOptions {
  readonly db: Knex;
  readonly store: ObjectStore;
  readonly config: Pick<ArchiveConfig, 'afterDays' | 'rowGroupRows' | 'objectRows'>;
  readonly logger: Logger;
}

export interface ManifestObject {
  readonly key: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly row_groups: number;
  readonly min_id: string;
  readonly max_id: string;
  readonly checksum: string;
}

export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly table: 'records';
  readonly day: string;
  readonly rows: number;
  readonly min_id: string | null;
  readonly max_id: string | null;
  readonly checksum: string;
  readonly checksum_algorithm: string;
  readonly columns: readonly string[];
  readonly objects: readonly ManifestObject[];
  readonly created_at: string;
}

export type DayOutcome =
  | {
      readonly day: string;
      readonly status: 'verified';
      readonly rows: number;
      readonly bytes: number;
      readonly objects: number;
      /** Objects this run uploaded (fewer than `objects` when it resumed an interrupted run). */
      readonly uploaded: number;
      readonly uploadMs: number;
      readonly verifyMs: number;
    }
  | { readonly day: string; readonly status: 'already-verified' | 'locked' | 'no-partition' }
  | { readonly day: string; readonly status: 'failed'; readonly error: string };

interface Session {
  q(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
  release(): Promise<void>;
}

async function session(db: Knex): Promise<Session> {
  const client = (await db.client.acquireConnection()) as {
    query(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
  };
  return { q: (sql, params = []) => client.query(sql, params), release: () => db.client.releaseConnection(client) };
}

/** `2026-11-20` of a UTC day start. */
export const dayText = (dayStartMs: number): string => new Date(dayStartMs).toISOString().slice(0, 10);
const dayStart = (day: string): number => Date.parse(`${day}T00:00:00Z`);
const dayNumber = (day: string): number => Math.round(dayStart(day) / DAY_MS);

/** Parses `YYYY-MM-DD` strictly (a real calendar day), or throws. */
export function parseDay(text: string): string {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? dayStart(text) : Number.NaN;
  if (!Number.isFinite(ms) || dayText(ms) !== text) throw new Error(`not a day: ${text} (expected YYYY-MM-DD)`);
  return text;
}

/** Archives every due day that is not verified yet; a failed day is reported and the others still run. */
export async function archiveDueDays(options: ArchiveOptions, now = Date.now()): Promise<DayOutcome[]> {
  const outcomes: DayOutcome[] = [];
  for (const day of await dueDays(options.db, options.config.afterDays, now)) {
    outcomes.push(await archiveDay(options, day));
  }
  return outcomes;
}

/** Archives and verifies one day (idempotent; resumes what an interrupted run left). Never throws for S3 or data problems: they are the outcome. */
export async function archiveDay(options: ArchiveOptions, day: string): Promise<DayOutcome> {
  const { db, logger } = options;
  const lock = await session(db);
  try {
    const { rows } = await lock.q('SELECT pg_try_advisory_lock($1, $2) AS ok', [ARCHIVE_LOCK, dayNumber(day)]);
    if (rows[0]?.ok !== true) return { day, status: 'locked' };
    try {
      const state = await db('archive_days').where({ day }).first();
      if (state?.status === 'verified') return { day, status: 'already-verified' };
      const table = partitionName(dayStart(day));
      if (!(await listPartitions(db)).includes(table)) return { day, status: 'no-partition' };
      await db.raw(
        `INSERT INTO archive_days (day, status, attempts, started_at) VALUES (?, 'uploading', 1, now())
         ON CONFLICT (day) DO UPDATE SET status = 'uploading', attempts = archive_days.attempts + 1,
           started_at = now(), updated_at = now()`,
        [day],
      );
      try {
        const started = performance.now();
        const uploaded = await uploadDay(options, day, table);
        const uploadedAt = performance.now();
        const result = await verifyDay(options, day, table);
        const timings = {
          uploadMs: Math.round(uploadedAt - started),
          verifyMs: Math.round(performance.now() - uploadedAt),
        };
        logger.info({ day, ...result, uploaded, ...timings }, 'archive verified');
        return { day, status: 'verified', ...result, uploaded, ...timings };
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const verification = error instanceof ArchiveVerificationError;
        await db('archive_days')
          .where({ day })
          .update({
            status: verification ? 'failed' : 'uploading',
            last_error: message.slice(0, 2000),
            updated_at: db.fn.now(),
          })
          .catch(() => undefined);
        // Objects that failed verification are not trusted again: the next run uploads the day anew.
        if (verification)
          await db('archive_objects')
            .where({ day })
            .delete()
            .catch(() => undefined);
        logger.warn({ day, err: error, verification }, 'archive failed; the next run retries');
        return { day, status: 'failed', error: message };
      }
    } finally {
      await lock.q('SELECT pg_advisory_unlock($1, $2)', [ARCHIVE_LOCK, dayNumber(day)]);
    }
  } finally {
    await lock.release();
  }
}

/** Thrown when what S3 holds does not match the partition: the day's objects are uploaded again. */
export class ArchiveVerificationError extends Error {
  override readonly name = 'ArchiveVerificationError';
}

interface ObjectRow {
  seq: number;
  key: string;
  rows: string;
  bytes: string;
  sha256: string;
  row_groups: number;
  min_id: string;
  max_id: string;
  checksum: string;
  last_timestamp_us: string;
  last_id: string;
}

const objectsOf = (db: Knex, day: string): Promise<ObjectRow[]> =>
  db('archive_objects')
    .where({ day })
    .orderBy('seq')
    .select('seq', 'key', 'rows', 'bytes', 'sha256', 'row_groups', 'checksum', 'last_timestamp_us', 'last_id')
    .select(db.raw('min_id::text AS min_id, max_id::text AS max_id, rows::text AS rows, bytes::text AS bytes'))
    .select(
      db.raw('checksum::text AS checksum, last_timestamp_us::text AS last_timestamp_us, last_id::text AS last_id'),
    );

/** Uploads the objects of a day that are not in S3 yet; resolves with how many it uploaded. */
async function uploadDay({ db, store, config, logger }: ArchiveOptions, day: string, table: string): Promise<number> {
  // Keep the recorded objects S3 still has, in order; anything after the first missing one is redone.
  const recorded = await objectsOf(db, day);
  let kept = 0;
  for (const object of recorded) {
    if ((await store.size(object.key)) !== Number(object.bytes)) break;
    kept++;
  }
  if (kept < recorded.length) await db('archive_objects').where({ day }).where('seq', '>=', kept).delete();
  const aborted = await store.abortStaleUploads(store.dayPrefix(day));
  if (aborted > 0) logger.info({ day, aborted }, 'aborted multipart uploads left by an interrupted run');

  const after = recorded[kept - 1];
  let position: { ts: bigint; id: string } | undefined =
    after === undefined ? undefined : { ts: BigInt(after.last_timestamp_us), id: after.last_id };
  let seq = kept;
  let uploaded = 0;
  for (;;) {
    const cursor = await openCursor(db, table, position, config.objectRows);
    try {
      const first = await cursor.next();
      if (first.length === 0) break;
      const key = store.objectKey(day, seq);
      const figures = new FiguresAccumulator();
      let last: ArchivedRow | undefined;
      const file = await store.upload(key, PARQUET, async (write) => {
        const writer = new ArchiveFileWriter(write, day);
        let group: ArchivedRow[] = [];
        let groupBytes = 0;
        for (let batch = first; batch.length > 0; batch = await cursor.next()) {
          for (const row of batch) {
            figures.add(row);
            group.push(row);
            groupBytes += row.payload.length + row.source.length + row.type.length + 52;
            if (group.length >= config.rowGroupRows || groupBytes >= ROW_GROUP_MAX_BYTES) {
              await writer.writeGroup(group);
              group = [];
              groupBytes = 0;
            }
          }
          last = batch.at(-1);
        }
        await writer.writeGroup(group);
        return writer.finish();
      });
      const f = figures.figures();
      if (last === undefined || f.minId === undefined || f.maxId === undefined) throw new Error('empty object');
      await db('archive_objects').insert({
        day,
        seq,
        key,
        rows: f.rows,
        bytes: file.bytes,
        sha256: file.sha256,
        row_groups: file.rowGroups,
        min_id: f.minId,
        max_id: f.maxId,
        checksum: f.checksum,
        last_timestamp_us: last.timestampUs.toString(),
        last_id: last.id,
      });
      uploaded++;
      seq++;
      position = { ts: last.timestampUs, id: last.id };
      if (f.rows < config.objectRows) break;
    } finally {
      await cursor.close();
    }
  }
  await db('archive_days').where({ day }).update({ status: 'uploaded', updated_at: db.fn.now() });
  return uploaded;
}

interface Cursor {
  next(): Promise<ArchivedRow[]>;
  close(): Promise<void>;
}

/** A server-side cursor over up to `limit` rows of a partition after `position`, in primary-key order. */
async function openCursor(
  db: Knex,
  table: string,
  position: { ts: bigint; id: string } | undefined,
  limit: number,
): Promise<Cursor> {
  const s = await session(db);
  const where = position === undefined ? '' : `WHERE (r."timestamp", r.id) > ($1::timestamptz, $2::uuid)`;
  const params = position === undefined ? [] : [microsToIso(position.ts), position.id];
  try {
    await s.q('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await s.q(
      `DECLARE archive_rows NO SCROLL CURSOR FOR SELECT ${ROW_SELECT} FROM ${table} r ${where}
       ORDER BY r."timestamp", r.id LIMIT ${Math.trunc(limit)}`,
      params,
    );
  } catch (error) {
    await s.q('ROLLBACK').catch(() => undefined);
    await s.release();
    throw error;
  }
  return {
    next: async () => (await s.q(`FETCH FORWARD ${FETCH_ROWS} FROM archive_rows`)).rows.map(rowFrom),
    close: async () => {
      await s.q('ROLLBACK').catch(() => undefined);
      await s.release();
    },
  };
}

/** The figures of a partition (or any table of records), computed by PostgreSQL in one scan. */
export async function tableFigures(db: Knex, table: string): Promise<RowFigures> {
  return figuresFrom((await db.raw(figuresSql(table))).rows[0]);
}

const CHECKSUM_ALGORITHM =
  'sum over rows of the first 8 bytes, as a signed big-endian int64, of md5(id, source, type, timestamp in epoch µs, payload JSON text, received_at in epoch µs joined by U+001F)';

/** Reads every object back, checks it against what was recorded and the partition, then writes the manifest. */
async function verifyDay({ db, store }: ArchiveOptions, day: string, table: string) {
  const objects = await objectsOf(db, day);
  const partition = await tableFigures(db, table);
  const total = new FiguresAccumulator();
  const scratch = mkdtempSync(join(tmpdir(), 'archive-verify-'));
  try {
    for (const object of objects) {
      const seen = await readObject(
        store,
        object.key,
        join(scratch, `${object.seq}.parquet`),
        object.sha256,
        Number(object.bytes),
        (rows) => {
          for (const row of rows) total.add(row);
        },
      );
      const recorded: RowFigures = {
        rows: Number(object.rows),
        minId: object.min_id,
        maxId: object.max_id,
        checksum: object.checksum,
      };
      if (!sameFigures(seen, recorded)) {
        throw new ArchiveVerificationError(
          `${store.url(object.key)} holds ${describeFigures(seen)}; uploaded were ${describeFigures(recorded)}`,
        );
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const archived = total.figures();
  if (!sameFigures(archived, partition)) {
    throw new ArchiveVerificationError(
      `the objects of ${day} hold ${describeFigures(archived)}; ${table} has ${describeFigures(partition)}`,
    );
  }
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    table: 'records',
    day,
    rows: partition.rows,
    min_id: partition.minId ?? null,
    max_id: partition.maxId ?? null,
    checksum: partition.checksum,
    checksum_algorithm: CHECKSUM_ALGORITHM,
    columns: ['id', 'source', 'type', 'timestamp', 'payload', 'received_at'],
    objects: objects.map((o) => ({
      key: o.key,
      rows: Number(o.rows),
      bytes: Number(o.bytes),
      sha256: o.sha256,
      row_groups: o.row_groups,
      min_id: o.min_id,
      max_id: o.max_id,
      checksum: o.checksum,
    })),
    created_at: new Date().toISOString(),
  };
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  const key = store.manifestKey(day);
  await store.put(key, text, 'application/json');
  if ((await store.getText(key)) !== text)
    throw new ArchiveVerificationError(`${store.url(key)} did not read back as written`);
  const bytes = objects.reduce((sum, o) => sum + Number(o.bytes), 0);
  await db('archive_days')
    .where({ day })
    .update({
      status: 'verified',
      rows: partition.rows,
      min_id: partition.minId ?? null,
      max_id: partition.maxId ?? null,
      checksum: partition.checksum,
      objects: objects.length,
      bytes,
      manifest_key: key,
      manifest_sha256: createHash('sha256').update(text).digest('hex'),
      last_error: null,
      verified_at: db.fn.now(),
      updated_at: db.fn.now(),
    });
  return { rows: partition.rows, bytes, objects: objects.length };
}

/**
 * Downloads one object, checks size and SHA-256, and hands its rows to `each` one row group at a time (waiting
 * for it before the next group is decoded); resolves with the object's figures.
 */
async function readObject(
  store: ObjectStore,
  key: string,
  path: string,
  sha256: string,
  bytes: number,
  each: (rows: ArchivedRow[]) => void | Promise<void>,
): Promise<RowFigures> {
  const got = await store.download(key, path).catch((error: unknown) => {
    if ((error as { name?: string }).name === 'NoSuchKey')
      throw new ArchiveVerificationError(`${store.url(key)} is missing`);
    throw error;
  });
  if (got.bytes !== bytes || got.sha256 !== sha256) {
    throw new ArchiveVerificationError(
      `${store.url(key)} has ${got.bytes} bytes with SHA-256 ${got.sha256}; expected ${bytes} bytes with ${sha256}`,
    );
  }
  let file: Awaited<ReturnType<typeof openArchiveFile>>;
  try {
    file = await openArchiveFile(path);
  } catch (error) {
    throw new ArchiveVerificationError(`${store.url(key)} is not a readable archive file: ${String(error)}`);
  }
  const figures = new FiguresAccumulator();
  for await (const group of file.groups()) {
    for (const row of group) figures.add(row);
    await each(group);
  }
  if (figures.figures().rows !== file.rows)
    throw new ArchiveVerificationError(`${store.url(key)}: row groups disagree with the footer`);
  return figures.figures();
}

export interface RestoreOptions {
  readonly db: Knex;
  readonly store: ObjectStore;
  readonly logger: Logger;
  /** How long retention must leave the restored day attached. */
  readonly holdDays: number;
}

export type RestoreOutcome = {
  readonly day: string;
  readonly status: 'restored' | 'already-present';
  readonly rows: number;
};

/**
 * Re-attaches a day from its archive: the objects listed in its manifest are downloaded, checked (size, SHA-256,
 * figures) and loaded into a staging table, which is checked against the manifest as a whole, then renamed and
 * ATTACHed as the day's partition in one transaction. The registry gets back any id it lost. Idempotent: a day
 * whose partition already holds exactly the manifest's rows is left alone; a staging table left by an
 * interrupted restore is dropped and rebuilt.
 */
export async function restoreDay(
  { db, store, logger, holdDays }: RestoreOptions,
  day: string,
): Promise<RestoreOutcome> {
  const text = await store.getText(store.manifestKey(day));
  if (text === undefined) throw new Error(`no archive of ${day}: ${store.url(store.manifestKey(day))} does not exist`);
  const manifest = JSON.parse(text) as Manifest;
  if (manifest.format !== MANIFEST_FORMAT || manifest.day !== day)
    throw new Error(`${store.manifestKey(day)} is not a manifest of ${day}`);
  const expected: RowFigures = {
    rows: manifest.rows,
    minId: manifest.min_id ?? undefined,
    maxId: manifest.max_id ?? undefined,
    checksum: manifest.checksum,
  };
  const table = partitionName(dayStart(day));
  const staging = `${table}_restore`;
  const lock = await session(db);
  try {
    await lock.q('SELECT pg_advisory_lock($1, $2)', [ARCHIVE_LOCK, dayNumber(day)]);
    try {
      const hold = async () =>
        db.raw(
          `UPDATE archive_days SET restored_at = now(), hold_until = now() + make_interval(days => ?), updated_at = now() WHERE day = ?`,
          [holdDays, day],
        );
      if ((await listPartitions(db)).includes(table)) {
        const present = await tableFigures(db, table);
        if (sameFigures(present, expected)) {
          await hold();
          return { day, status: 'already-present', rows: present.rows };
        }
        if (present.rows > 0) {
          throw new Error(
            `${table} exists with ${describeFigures(present)}, not the archive's ${describeFigures(expected)}; refusing to merge`,
          );
        }
        // An empty partition (created ahead by maintenance) is replaced by the restored one.
        await db.raw(`ALTER TABLE records DETACH PARTITION ${table}`);
        await db.raw(`DROP TABLE ${table}`);
      }
      await db.raw(`DROP TABLE IF EXISTS ${staging}`);
      await db.raw(`CREATE TABLE ${staging} (LIKE records INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
      const scratch = mkdtempSync(join(tmpdir(), 'archive-restore-'));
      try {
        for (const [seq, object] of manifest.objects.entries()) {
          const path = join(scratch, `${seq}.parquet`);
          // One row group is in memory at a time; its inserts finish before the next group is decoded.
          const seen = await readObject(store, object.key, path, object.sha256, object.bytes, async (rows) => {
            for (let i = 0; i < rows.length; i += RESTORE_BATCH)
              await insertRows(db, staging, rows.slice(i, i + RESTORE_BATCH));
          });
          const listed: RowFigures = {
            rows: object.rows,
            minId: object.min_id,
            maxId: object.max_id,
            checksum: object.checksum,
          };
          if (!sameFigures(seen, listed))
            throw new Error(
              `${store.url(object.key)} holds ${describeFigures(seen)}; the manifest lists ${describeFigures(listed)}`,
            );
        }
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
      const loaded = await tableFigures(db, staging);
      if (!sameFigures(loaded, expected))
        throw new Error(`restored ${describeFigures(loaded)}; the manifest says ${describeFigures(expected)}`);
      const from = new Date(dayStart(day)).toISOString();
      const to = new Date(dayStart(day) + DAY_MS).toISOString();
      await db.transaction(async (trx) => {
        await trx.raw(`SET LOCAL lock_timeout = '10s'`);
        // The CHECK lets ATTACH skip its validation scan; it has done its job once the partition is attached.
        await trx.raw(
          `ALTER TABLE ${staging} ADD CONSTRAINT ${staging}_bounds CHECK ("timestamp" >= '${from}' AND "timestamp" < '${to}')`,
        );
        await trx.raw(`ALTER TABLE ${staging} RENAME TO ${table}`);
        await trx.raw(`ALTER TABLE records ATTACH PARTITION ${table} FOR VALUES FROM ('${from}') TO ('${to}')`);
        await trx.raw(`ALTER TABLE ${table} DROP CONSTRAINT ${staging}_bounds`);
      });
      await db.raw(
        `INSERT INTO record_ids (id, "timestamp") SELECT id, "timestamp" FROM ${table} ON CONFLICT (id) DO NOTHING`,
      );
      await hold();
      logger.info({ day, rows: loaded.rows, hold_days: holdDays }, 'day restored from the archive');
      return { day, status: 'restored', rows: loaded.rows };
    } finally {
      await lock.q('SELECT pg_advisory_unlock($1, $2)', [ARCHIVE_LOCK, dayNumber(day)]);
    }
  } finally {
    await lock.release();
  }
}

async function insertRows(db: Knex, table: string, rows: readonly ArchivedRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.raw(
    `INSERT INTO ${table} (id, source, type, "timestamp", payload, received_at)
     SELECT * FROM unnest(?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::timestamptz[])`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.source),
      rows.map((r) => r.type),
      rows.map((r) => microsToIso(r.timestampUs)),
      rows.map((r) => r.payload),
      rows.map((r) => microsToIso(r.receivedAtUs)),
    ],
  );
}
