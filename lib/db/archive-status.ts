/**
 * What operators and clients learn about the archive (lib/archive, issue 14) from PostgreSQL alone, so the
 * functions need no S3 client or Parquet code for it: the figures behind the archive metrics, the days due for
 * archiving, and where an archived record went.
 */
import type { Knex } from 'knex';
import { listPartitions } from './partitions.ts';

const DAY_MS = 86_400_000;

/** Days (`YYYY-MM-DD`) whose partitions exist and lie wholly before today − `afterDays`, oldest first. */
export async function dueDays(db: Knex, afterDays: number, now = Date.now()): Promise<string[]> {
  const cutoff = Math.floor(now / DAY_MS) * DAY_MS - afterDays * DAY_MS;
  return (await listPartitions(db))
    .map((name) => /^records_(\d{4})(\d{2})(\d{2})$/.exec(name))
    .flatMap((m) => (m ? [`${m[1]}-${m[2]}-${m[3]}`] : []))
    .filter((day) => Date.parse(`${day}T00:00:00Z`) + DAY_MS <= cutoff)
    .sort();
}

export interface ArchiveStatus {
  /** Days whose archive is verified. */
  readonly verifiedDays: number;
  /** Bytes of Parquet objects of verified days. */
  readonly bytes: number;
  /** Seconds since the last day was verified; undefined before the first. */
  readonly lastSuccessAgeSeconds: number | undefined;
  /** Partitions past ARCHIVE_AFTER_DAYS without a verified archive: what "falling behind" means. */
  readonly backlogDays: number;
}

/** The archive's state for the metrics (two small queries: archive_days and the partition catalogue). */
export async function archiveStatus(db: Knex, afterDays: number, now = Date.now()): Promise<ArchiveStatus> {
  const { rows } = await db.raw(`
    SELECT count(*) FILTER (WHERE status = 'verified')::int AS verified,
      coalesce(sum(bytes) FILTER (WHERE status = 'verified'), 0)::float8 AS bytes,
      extract(epoch FROM now() - max(verified_at))::float8 AS age,
      coalesce(array_agg(day::text) FILTER (WHERE status = 'verified'), '{}') AS days
    FROM archive_days`);
  const row = rows[0] as { verified: number; bytes: number; age: number | null; days: string[] };
  const verified = new Set(row.days);
  const due = await dueDays(db, afterDays, now);
  return {
    verifiedDays: row.verified,
    bytes: row.bytes,
    lastSuccessAgeSeconds: row.age ?? undefined,
    backlogDays: due.filter((day) => !verified.has(day)).length,
  };
}

/**
 * The day an id's record was archived on, when the registry knows the id and that day's archive is verified:
 * asked only after a by-id read found no record, so found records never pay for it.
 */
export async function archivedDayOf(db: Knex, id: string): Promise<string | undefined> {
  const { rows } = await db.raw(
    `SELECT a.day::text AS day FROM record_ids i
     JOIN archive_days a ON a.day = (i."timestamp" AT TIME ZONE 'UTC')::date AND a.status = 'verified'
     WHERE i.id = ?::uuid`,
    [id],
  );
  return (rows[0] as { day?: string } | undefined)?.day;
}
