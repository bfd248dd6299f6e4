import type { Knex } from 'knex';

/**
 * What the archiver (lib/archive) knows about each day it has written to S3. Retention drops a day's partition
 * only when its row here is `verified` (every object read back and checked against the partition, manifest
 * written), so these rows are the only thing standing between a partition and `DROP TABLE`; the objects of a
 * day are recorded one by one as their uploads complete, which is what makes a crashed archive resumable.
 *
 * Roles: when the least-privilege roles exist (migration 0007, another change), the migrator's role gets the
 * archiver's rights and the function roles read what their metrics and `GET /data/{id}` need. Guarded, so this
 * migration also runs where those roles were never created.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    CREATE TABLE archive_days (
      day date PRIMARY KEY,
      status text NOT NULL CHECK (status IN ('uploading', 'uploaded', 'verified', 'failed')),
      -- The partition's own figures, taken when the archive was verified: what a restore must give back.
      rows int8,
      min_id uuid,
      max_id uuid,
      checksum numeric,
      objects int,
      bytes int8,
      manifest_key text,
      manifest_sha256 text,
      attempts int NOT NULL DEFAULT 0,
      last_error text,
      started_at timestamptz,
      verified_at timestamptz,
      restored_at timestamptz,
      -- A restored day stays attached until then, whatever RETENTION_DAYS says.
      hold_until timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
  await db.raw(`
    CREATE TABLE archive_objects (
      day date NOT NULL REFERENCES archive_days (day) ON DELETE CASCADE,
      seq int NOT NULL,
      key text NOT NULL,
      rows int8 NOT NULL,
      bytes int8 NOT NULL,
      sha256 text NOT NULL,
      row_groups int NOT NULL,
      min_id uuid NOT NULL,
      max_id uuid NOT NULL,
      checksum numeric NOT NULL,
      -- The last ("timestamp", id) written: the next object starts after it.
      last_timestamp_us int8 NOT NULL,
      last_id uuid NOT NULL,
      uploaded_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (day, seq)
    )`);
  // The archive job runs as ds_migrate (it drops partitions), which owns these like everything else (0007);
  // query reads a day's state for GET of an archived id, ingest for the archive gauges.
  await db.raw('ALTER TABLE archive_days OWNER TO ds_migrate');
  await db.raw('ALTER TABLE archive_objects OWNER TO ds_migrate');
  await db.raw('GRANT SELECT ON archive_days TO ds_query, ds_ingest');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP TABLE IF EXISTS archive_objects, archive_days');
}
