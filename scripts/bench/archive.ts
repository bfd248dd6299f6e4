/**
 * `npm run bench:archive`: the archive's figures on this machine, with the real code on the services of
 * `npm run services:up` (PostgreSQL and the S3 server): one day of ROWS generated records (default 500,000,
 * ~150 B payloads, as in docs/storage.md's data) is archived, verified, dropped by retention and restored.
 * Prints archive rows/s and bytes per row, verification time (and the PostgreSQL share of it), restore rows/s,
 * and what keeping the archived ids in the registry costs (bytes per id).
 *
 * Reads DATABASE_URL (default: the services' PostgreSQL, database `data_service_bench_archive`, which it drops
 * and creates; it refuses a name without "bench"), the S3_* settings the services print, ROWS, OBJECT_ROWS
 * (default 2,000,000) and ROW_GROUP_ROWS (default 100,000).
 */
import { randomBytes } from 'node:crypto';
import { archiveDay, createObjectStore, restoreDay, tableFigures } from '#lib/archive';
import { loadConfig } from '#lib/config';
import { createDatabase, databaseNameOf, maintainPartitions, migrateToLatest, partitionName } from '#lib/db';
import { helpFromHeader } from '../help.ts';

helpFromHeader(import.meta.url);

const DAY = 86_400_000;
const rows = Number(process.env.ROWS ?? 500_000);
const port = process.env.SERVICES_PG_PORT ?? '25432';
const url = process.env.BENCH_DATABASE_URL ?? `postgres://postgres@127.0.0.1:${port}/data_service_bench_archive`;
if (!databaseNameOf(url).includes('bench'))
  throw new Error(`refusing ${databaseNameOf(url)}: its name must contain "bench"`);
const config = loadConfig(
  {
    ...process.env,
    DATABASE_URL: url,
    ARCHIVE_PREFIX: `bench-${randomBytes(4).toString('hex')}`,
    ARCHIVE_OBJECT_ROWS: process.env.OBJECT_ROWS ?? '2000000',
    ARCHIVE_ROW_GROUP_ROWS: process.env.ROW_GROUP_ROWS ?? '100000',
    LOG_LEVEL: 'silent',
  },
  { servesApi: false },
);
const archive = config.archive;
if (archive === undefined)
  throw new Error('S3_BUCKET is not set: eval "$(npm run -s services:up -- postgres s3)" first');

const log = (message: string) => process.stderr.write(`[bench:archive] ${message}\n`);
const options = {
  poolMax: 4,
  connectTimeoutMs: 5_000,
  statementTimeoutMs: 3_600_000,
  applicationName: 'bench:archive',
};
const admin = createDatabase({ ...options, url: url.replace(/\/[^/]+$/, '/postgres') });
await admin.raw(`DROP DATABASE IF EXISTS ${databaseNameOf(url)} WITH (FORCE)`);
await admin.raw(`CREATE DATABASE ${databaseNameOf(url)}`);
await admin.destroy();
const db = createDatabase({ ...options, url });
const store = createObjectStore(archive);
const silent = { info: () => undefined, warn: () => undefined };
const now = Date.now();
const dayMs = Math.floor(now / DAY) * DAY - 35 * DAY;
const day = new Date(dayMs).toISOString().slice(0, 10);
const table = partitionName(dayMs);
try {
  await migrateToLatest(db);
  await maintainPartitions(db, { pastDays: 40, aheadDays: 1, retentionDays: 0, idempotencyTtlHours: 24 }, now);
  log(`loading ${rows} rows into ${table}`);
  await db.raw(
    `INSERT INTO ${table} (id, source, type, "timestamp", payload, received_at)
     SELECT gen_random_uuid(), 'source-' || lpad((n % 20)::text, 2, '0'),
       (ARRAY['page.view', 'order.created', 'order.refunded', 'job.finished'])[1 + n % 4],
       to_timestamp(${dayMs / 1000} + n * (86399.0 / ?)) , jsonb_build_object('n', n, 'user', 'user-' || (n % 5000),
         'amount', round((random() * 1000)::numeric, 2), 'tags', jsonb_build_array('a', 'b'), 'ok', n % 3 = 0),
       to_timestamp(${dayMs / 1000} + n * (86399.0 / ?) + 0.01)
     FROM generate_series(1, ?) AS n`,
    [rows, rows, rows],
  );
  await db.raw(`INSERT INTO record_ids (id, "timestamp") SELECT id, "timestamp" FROM ${table}`);
  await db.raw(`VACUUM (ANALYZE) ${table}`);
  await db.raw('VACUUM (ANALYZE) record_ids');
  const sizes = (
    await db.raw(
      `SELECT pg_total_relation_size(?) AS partition,
         (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'record_ids'::regclass) AS registry`,
      [table],
    )
  ).rows[0] as { partition: string; registry: string };

  const figuresStarted = performance.now();
  await tableFigures(db, table);
  const figuresMs = performance.now() - figuresStarted;

  log('archiving');
  const outcome = await archiveDay({ db, store, config: archive, logger: silent }, day);
  if (outcome.status !== 'verified') throw new Error(`archive: ${JSON.stringify(outcome)}`);
  const dropped = await maintainPartitions(
    db,
    { pastDays: 7, aheadDays: 1, retentionDays: 31, idempotencyTtlHours: 24, requireArchive: true },
    now,
  );
  if (!dropped.dropped.includes(table)) throw new Error('retention did not drop the archived day');
  log('restoring');
  const restoreStarted = performance.now();
  const restored = await restoreDay({ db, store, logger: silent, holdDays: 1 }, day);
  const restoreMs = performance.now() - restoreStarted;

  const perSecond = (n: number, ms: number) => Math.round((n / ms) * 1000);
  const result = {
    rows,
    objects: outcome.objects,
    partition_bytes_per_row: Math.round(Number(sizes.partition) / rows),
    parquet_bytes_per_row: Number((outcome.bytes / rows).toFixed(1)),
    archive_upload_ms: outcome.uploadMs,
    archive_rows_per_s: perSecond(rows, outcome.uploadMs),
    verify_ms: outcome.verifyMs,
    verify_postgres_figures_ms: Math.round(figuresMs),
    archive_total_rows_per_s: perSecond(rows, outcome.uploadMs + outcome.verifyMs),
    restore_ms: Math.round(restoreMs),
    restore_rows_per_s: perSecond(restored.rows, restoreMs),
    registry_bytes_per_id: Math.round(Number(sizes.registry) / rows),
    // This process's peak resident set: bounded by a row group and two upload parts, not by ROWS.
    max_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  store.close();
  await db.destroy();
}
