import type { Knex } from 'knex';

/**
 * A write that finds no partition for its day. Maintenance keeps the write window's days created ahead, but a run
 * can fail, be late, or a day can be dropped by hand; before this, such a write failed with SQLSTATE 23514 and was
 * answered 503 again on every retry. Now the writer asks PostgreSQL to create that one day and writes again.
 *
 * - `ds_create_record_partition(day)` is the one definition of a daily partition (name, bounds, grants), used by
 *   maintenance too (lib/db/partitions.ts). It is the owner's only: it creates any day it is given.
 * - `ds_ensure_record_partition(day)` is what ds_ingest may call. ds_ingest runs no DDL (migration 0007), so the
 *   function is SECURITY DEFINER, owned by ds_migrate, and refuses (SQLSTATE DS422) every day outside the write
 *   window as PostgreSQL's clock and the window last recorded by maintenance say: a compromised ingest pod can
 *   create at most the days maintenance would create anyway, never an arbitrary table. search_path is fixed in the
 *   function, so a caller's own objects cannot stand in for the ones it names.
 * - `record_partition_window` holds that window (days back and ahead of today), written by each maintenance run
 *   from its configuration (as the owner; nobody else may write it). Before the first run there is no window and
 *   the function refuses with SQLSTATE 55000: the deployment, not the client, must act.
 *
 * Both take the transaction-scoped advisory lock 4242002 around their existence check, so two pods (or a pod and
 * maintenance) creating the same day do not collide: the second finds it attached. It is not maintenance's
 * session lock (4242001): a write must not wait behind a run's retention deletes.
 */
const CREATE_LOCK = 4_242_002;

export const PARTITION_FUNCTIONS = ['ds_create_record_partition(date)', 'ds_ensure_record_partition(date)'] as const;

export async function up(db: Knex): Promise<void> {
  const schema = String(((await db.raw('SELECT current_schema() AS name')).rows as Array<{ name: string }>)[0]?.name);
  const pinned = `SET search_path = ${quoteIdent(schema)}, pg_temp SET "TimeZone" = 'UTC' SET "DateStyle" = 'ISO'`;
  await db.raw(`
    CREATE TABLE record_partition_window (
      only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
      past_days integer NOT NULL CHECK (past_days >= 0),
      ahead_days integer NOT NULL CHECK (ahead_days >= 0),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
  await db.raw(`
    CREATE FUNCTION ds_create_record_partition(day date) RETURNS text
    LANGUAGE plpgsql ${pinned} AS $$
    DECLARE
      name text := 'records_' || to_char(day, 'YYYYMMDD');
      granted record;
    BEGIN
      -- A hypertable makes its chunks itself on insert; there is nothing to attach.
      IF (SELECT relkind FROM pg_class WHERE oid = 'records'::regclass) <> 'p' THEN
        RETURN NULL;
      END IF;
      PERFORM pg_advisory_xact_lock(${CREATE_LOCK});
      IF EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'records'::regclass AND c.relname = name) THEN
        RETURN NULL;
      END IF;
      -- A plain table first, then ATTACH: SHARE UPDATE EXCLUSIVE on records, which reads and inserts do not wait for
      -- (CREATE TABLE … PARTITION OF would take ACCESS EXCLUSIVE on the parent; docs/storage.md).
      EXECUTE format('CREATE TABLE IF NOT EXISTS %I (LIKE records INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
      EXECUTE format('ALTER TABLE records ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name,
                     day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
      -- The parent's grants, as ds_copy_grants_to_partitions (0007) gives them, for this partition alone.
      FOR granted IN
        SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
        FROM pg_class p, aclexplode(p.relacl) a WHERE p.oid = 'records'::regclass AND a.grantee <> p.relowner
      LOOP
        EXECUTE format('GRANT %s ON TABLE %I TO %s', granted.privilege_type, name, granted.grantee);
      END LOOP;
      RETURN name;
    END $$`);
  await db.raw(`
    CREATE FUNCTION ds_ensure_record_partition(day date) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER ${pinned} SET lock_timeout = '5s' AS $$
    DECLARE
      win record;
      today date := (now() AT TIME ZONE 'UTC')::date;
    BEGIN
      SELECT past_days, ahead_days INTO win FROM record_partition_window;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'no write window recorded: partition maintenance has not run on this database'
          USING ERRCODE = '55000';
      END IF;
      -- The days maintenance creates: the past window and one more day of margin, through the days ahead.
      IF day IS NULL OR day < today - (win.past_days + 1) OR day > today + win.ahead_days THEN
        RAISE EXCEPTION 'day % is outside the write window (% to %)',
          day, today - (win.past_days + 1), today + win.ahead_days
          USING ERRCODE = 'DS422', DETAIL = coalesce(to_char(day, 'YYYY-MM-DD'), '');
      END IF;
      RETURN ds_create_record_partition(day);
    END $$`);
  await db.raw('ALTER TABLE record_partition_window OWNER TO ds_migrate');
  for (const fn of PARTITION_FUNCTIONS) {
    await db.raw(`ALTER FUNCTION ${fn} OWNER TO ds_migrate`);
    await db.raw(`REVOKE EXECUTE ON FUNCTION ${fn} FROM PUBLIC`);
  }
  await db.raw('GRANT EXECUTE ON FUNCTION ds_ensure_record_partition(date) TO ds_ingest');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP FUNCTION IF EXISTS ds_ensure_record_partition(date)');
  await db.raw('DROP FUNCTION IF EXISTS ds_create_record_partition(date)');
  await db.raw('DROP TABLE IF EXISTS record_partition_window');
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;
