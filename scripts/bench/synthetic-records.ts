/**
 * Synthetic records loaded fast, straight into a migrated database, for `bench:growth` and the storage-plan
 * tests (test/integration/storage-plans.test.ts): one INSERT … SELECT per chunk with synchronous_commit off, each
 * id claimed in `record_ids` in the same statement as the repository does (the outbox stays empty: a relay would
 * have drained it), then VACUUM (ANALYZE).
 *
 * Timestamps rise with the row number (as live ingest does) over [start, end] with jitter inside a row's slot;
 * 70 % of ids are UUIDv7 derived from the timestamp (server-assigned), 30 % random v4 (client-supplied). Sources
 * and types are skewed: of the 99 % that are not `batch-job` rows, source-00 ≈ 22 % … source-19 ≈ 2.5 %, and
 * page.view ≈ 50 % … order.refunded ≈ 4 %; `batch-job` rows (1 %) are all of type job.finished.
 */
import type pg from 'pg';

export const COMMON_SOURCE = 'source-00';
export const SOURCES = 20;
export const RARE_TYPE = 'order.refunded';
export const LONE_SOURCE = 'batch-job';
const CHUNK = 200_000;

/**
 * Loads rows `from`…`to` (1-based) of a load of `total` rows spread over [startMs, endMs]: a size is a prefix of
 * the same time-ordered load, so a table can be grown in steps. `progress` hears after each chunk.
 */
export async function loadSyntheticRecords(
  client: pg.Client,
  o: { from: number; to: number; total: number; startMs: number; endMs: number; progress?: (loaded: number) => void },
): Promise<void> {
  await client.query('SET synchronous_commit = off');
  for (let lo = o.from; lo <= o.to; lo += CHUNK) {
    const hi = Math.min(o.to, lo + CHUNK - 1);
    await client.query(
      `WITH s AS (
         SELECT g,
                to_timestamp(($3::float8 + ($4::float8 - $3::float8) * (g - 1 + random()) / $5::float8) / 1000) AS ts,
                random() AS r1, random() AS r2,
                replace(gen_random_uuid()::text, '-', '') AS hex
         FROM generate_series($1::int, $2::int) AS g
       ), gen AS MATERIALIZED (
         SELECT CASE WHEN g % 10 < 7
                  THEN (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(hex, 14))::uuid
                  ELSE hex::uuid END AS id,
                CASE WHEN g % 100 = 42 THEN '${LONE_SOURCE}'
                  ELSE 'source-' || lpad(floor(${SOURCES} * r1 * r1)::int::text, 2, '0') END AS source,
                CASE WHEN g % 100 = 42 THEN 'job.finished'
                  ELSE (ARRAY['page.view', 'page.click', 'form.submit', 'cart.add', 'cart.remove', 'order.created',
                              'order.paid', '${RARE_TYPE}'])[1 + floor(8 * r2 * r2 * r2)::int] END AS type,
                ts,
                jsonb_build_object('seq', g, 'value', round((r1 * 1000)::numeric, 2), 'tags', jsonb_build_array('a', 'b')) AS payload
         FROM s
       ), claimed AS (
         INSERT INTO record_ids (id, "timestamp") SELECT id, ts FROM gen
       )
       INSERT INTO records (id, source, type, "timestamp", payload, received_at)
       SELECT id, source, type, ts, payload, ts + interval '40 milliseconds' FROM gen`,
      [lo, hi, o.startMs, o.endMs, o.total],
    );
    o.progress?.(hi);
  }
  await client.query('RESET synchronous_commit');
  // VACUUM sets the visibility map; ANALYZE gathers per-partition statistics (autovacuum never analyzes the
  // partitioned parent itself).
  await client.query('VACUUM (ANALYZE) records');
  await client.query('VACUUM (ANALYZE) record_ids');
}

/**
 * Loads `count` records of one source straight into a migrated database, as `loadSyntheticRecords` does (chunked
 * INSERT … SELECT, each id claimed in `record_ids`, then VACUUM (ANALYZE)): timestamps `spacingMs` apart ending
 * at `endMs`, ids UUIDv7 of their timestamp, payloads `{"seq":…,"fill":"…"}` with `fillBytes` of hex text. For
 * the benches that need one large source fast (bench:list-bytes, bench:export), and tests (`vacuum: false`: a
 * shared test database is not vacuumed for a few thousand rows).
 */
export async function loadSourceRecords(
  client: pg.Client,
  o: {
    source: string;
    count: number;
    fillBytes: number;
    endMs: number;
    spacingMs: number;
    vacuum?: boolean;
    progress?: (loaded: number) => void;
  },
): Promise<void> {
  await client.query('SET synchronous_commit = off');
  const chunk = Math.max(1, Math.min(CHUNK, Math.floor((256 * 1024 * 1024) / Math.max(1, o.fillBytes))));
  for (let lo = 1; lo <= o.count; lo += chunk) {
    const hi = Math.min(o.count, lo + chunk - 1);
    await client.query(
      `WITH gen AS MATERIALIZED (
         SELECT g, to_timestamp(($4::float8 - ($3::int - g) * $5::float8) / 1000) AS ts,
                replace(gen_random_uuid()::text, '-', '') AS hex
         FROM generate_series($1::int, $2::int) AS g
       ), rows AS MATERIALIZED (
         SELECT (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(hex, 14))::uuid AS id,
                ts, jsonb_build_object('seq', g, 'fill', substr(repeat(md5(g::text), ceil($6::int / 32.0)::int), 1, $6::int)) AS payload
         FROM gen
       ), claimed AS (
         INSERT INTO record_ids (id, "timestamp") SELECT id, ts FROM rows
       )
       INSERT INTO records (id, source, type, "timestamp", payload, received_at)
       SELECT id, $7, 'bench.row', ts, payload, ts + interval '40 milliseconds' FROM rows`,
      [lo, hi, o.count, o.endMs, o.spacingMs, o.fillBytes, o.source],
    );
    o.progress?.(hi);
  }
  await client.query('RESET synchronous_commit');
  if (o.vacuum === false) return;
  await client.query('VACUUM (ANALYZE) records');
  await client.query('VACUUM (ANALYZE) record_ids');
}
