import type { Knex } from 'knex';

/**
 * Least privilege below the app (DESIGN.md invariant 7): one NOLOGIN group role per kind of process, granted
 * exactly what that process's SQL touches, and one owner of the schema. Operators create LOGIN users that are
 * members (docs/security.md, "Least privilege"); a compromised query pod can then read records and nothing else.
 *
 * - `ds_migrate` owns every object of the schema: migrations and partition maintenance (DDL) run as it.
 * - `ds_ingest`: the write path of lib/db/record-repository.ts — claim ids in `record_ids`, insert `records` (and
 *   read the inserted rows back through RETURNING), one `outbox` event per record, `idempotency_keys` — plus the
 *   outbox backlog metric (`count(*)`, `min(created_at)`). Never DELETE, never DDL, never an event's text.
 * - `ds_query`: SELECT on `records` and `record_ids` (ds_find_record runs with the caller's rights and reads
 *   both), EXECUTE on the read functions.
 * - `ds_relay`: the outbox only, as lib/db/outbox-repository.ts uses it: claim rows (SELECT … FOR UPDATE, which
 *   PostgreSQL allows only with UPDATE on at least one column), delete them once published.
 *
 * Roles are cluster-global while grants live in each database, so the roles are created only when missing (and
 * a concurrent migration of another database creating the same role is not an error), and never dropped by
 * `down`: another database of the cluster may still use them.
 */
export const ROLES = ['ds_migrate', 'ds_ingest', 'ds_query', 'ds_relay'] as const;

/**
 * Table privileges per role: the one statement of what each role may do, read by this migration and by
 * test/integration/db-roles.test.ts. A column list limits the privilege to those columns.
 */
export const TABLE_GRANTS: ReadonlyArray<{
  readonly role: (typeof ROLES)[number];
  readonly table: string;
  readonly privilege: 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';
  readonly columns?: readonly string[];
}> = [
  { role: 'ds_ingest', table: 'record_ids', privilege: 'SELECT' },
  { role: 'ds_ingest', table: 'record_ids', privilege: 'INSERT' },
  { role: 'ds_ingest', table: 'records', privilege: 'SELECT' },
  { role: 'ds_ingest', table: 'records', privilege: 'INSERT' },
  { role: 'ds_ingest', table: 'outbox', privilege: 'INSERT', columns: ['record_id', 'event', 'trace'] },
  // The backlog metric only: ingest never reads an event.
  { role: 'ds_ingest', table: 'outbox', privilege: 'SELECT', columns: ['created_at'] },
  { role: 'ds_ingest', table: 'idempotency_keys', privilege: 'SELECT' },
  { role: 'ds_ingest', table: 'idempotency_keys', privilege: 'INSERT' },
  // ON CONFLICT (key) DO UPDATE of an expired key; expired keys are deleted by maintenance (ds_migrate).
  {
    role: 'ds_ingest',
    table: 'idempotency_keys',
    privilege: 'UPDATE',
    columns: ['fingerprint', 'response', 'created_at'],
  },
  { role: 'ds_query', table: 'records', privilege: 'SELECT' },
  { role: 'ds_query', table: 'record_ids', privilege: 'SELECT' },
  { role: 'ds_relay', table: 'outbox', privilege: 'SELECT' },
  { role: 'ds_relay', table: 'outbox', privilege: 'DELETE' },
  // FOR UPDATE SKIP LOCKED needs UPDATE on some column. `trace` is the one whose change harms least (a trace
  // link); `id` would let the relay requeue an event and `created_at` would hide the outbox lag from alerts.
  { role: 'ds_relay', table: 'outbox', privilege: 'UPDATE', columns: ['trace'] },
];

/** EXECUTE per role (every function is SECURITY INVOKER: the caller still needs the table privileges). */
export const FUNCTION_GRANTS: ReadonlyArray<{ readonly role: (typeof ROLES)[number]; readonly fn: string }> = [
  { role: 'ds_ingest', fn: 'ds_utc_text(timestamptz)' },
  { role: 'ds_ingest', fn: 'ds_record_json(uuid, text, text, timestamptz, jsonb, timestamptz)' },
  { role: 'ds_ingest', fn: 'ds_record_event_json(text)' },
  // Migration 0006: the write statement, and the content digest it compares client ids by.
  { role: 'ds_ingest', fn: 'ds_insert_records(json)' },
  { role: 'ds_ingest', fn: 'ds_record_digest(text, text, timestamptz, jsonb)' },
  { role: 'ds_query', fn: 'ds_find_record_source(uuid)' },
  { role: 'ds_query', fn: 'ds_utc_text(timestamptz)' },
  { role: 'ds_query', fn: 'ds_record_json(uuid, text, text, timestamptz, jsonb, timestamptz)' },
  { role: 'ds_query', fn: 'ds_find_record(uuid)' },
];

const FUNCTIONS = [...new Set(FUNCTION_GRANTS.map((g) => g.fn))];

export async function up(db: Knex): Promise<void> {
  for (const role of ROLES) {
    // IF NOT EXISTS for reruns and other databases of the cluster; the handler for two migrations of two
    // databases racing (both see no role; the loser's CREATE fails on pg_authid's unique index).
    await db.raw(`
      DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN
          CREATE ROLE ${role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
        END IF;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END $$`);
  }

  // ALTER … OWNER TO needs the migrating user to be (able to become) ds_migrate. A superuser is; an RDS-style
  // admin with CREATEROLE is not until granted (PostgreSQL 16 gives the creator of a role ADMIN but not SET).
  await db.raw(`
    DO $$ BEGIN
      IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
         AND NOT pg_has_role(current_user, 'ds_migrate',
                             CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END) THEN
        EXECUTE format('GRANT ds_migrate TO %I', current_user);
      END IF;
    END $$`);

  // The schema: everyone resolves names in it, only the owner creates. PostgreSQL 15 already revoked CREATE
  // from PUBLIC on public; older servers did not, and a query user could otherwise create tables.
  await db.raw(`
    DO $$ BEGIN
      EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
      EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO ds_migrate', current_schema());
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO ds_ingest, ds_query, ds_relay', current_schema());
    END $$`);

  // The database: CONNECT explicitly (so that an operator may revoke it from PUBLIC), and no temporary tables
  // for PUBLIC — no function of the service uses them. Only the database's owner (or a superuser) may change
  // these; a migration run by anyone else says so and leaves them.
  await db.raw(`
    DO $$ BEGIN
      IF pg_has_role(current_user, (SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO ds_migrate, ds_ingest, ds_query, ds_relay', current_database());
        EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
      ELSE
        RAISE WARNING 'not the owner of database %: CONNECT and TEMPORARY left as they are', current_database();
      END IF;
    END $$`);

  // A partition gets its parent's grants. Reads and writes through the parent are all PostgreSQL checks (it
  // never checks a partition reached through its parent), so this only keeps a partition queried by name — by an
  // operator, a dump, a future code path — as open or as closed as its parent. Partition maintenance calls it
  // after creating partitions (lib/db/partitions.ts); table-level privileges only (no table here has column ones
  // on a partitioned parent).
  await db.raw(`
    CREATE FUNCTION ds_copy_grants_to_partitions(parent regclass) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE granted record;
    BEGIN
      FOR granted IN
        SELECT i.inhrelid::regclass AS child, a.privilege_type,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
        FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent, aclexplode(p.relacl) a
        WHERE i.inhparent = parent AND a.grantee <> p.relowner
      LOOP
        EXECUTE format('GRANT %s ON TABLE %s TO %s', granted.privilege_type, granted.child, granted.grantee);
      END LOOP;
    END $$`);
  await db.raw('REVOKE EXECUTE ON FUNCTION ds_copy_grants_to_partitions(regclass) FROM PUBLIC');

  // Ownership of everything the earlier migrations created (tables and their partitions, standalone sequences,
  // functions, knex's own bookkeeping tables): ds_migrate, so that any member can run later migrations and
  // maintenance. Partitions are listed themselves (a parent's new owner does not reach them); indexes and owned
  // (serial, identity) sequences follow their table; extension members are left to the extension.
  await db.raw(`
    DO $$ DECLARE object record; BEGIN
      FOR object IN
        SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
      LOOP
        EXECUTE format(CASE WHEN object.relkind = 'S' THEN 'ALTER SEQUENCE %s OWNER TO ds_migrate'
                            ELSE 'ALTER TABLE %s OWNER TO ds_migrate' END, object.name);
      END LOOP;
      FOR object IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')
      LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO ds_migrate', object.name);
      END LOOP;
    END $$`);

  for (const grant of TABLE_GRANTS) {
    const columns = grant.columns ? ` (${grant.columns.join(', ')})` : '';
    await db.raw(`GRANT ${grant.privilege}${columns} ON TABLE ${grant.table} TO ${grant.role}`);
  }
  // Functions are executable by PUBLIC unless revoked: only the roles that call one keep it.
  for (const fn of FUNCTIONS) await db.raw(`REVOKE EXECUTE ON FUNCTION ${fn} FROM PUBLIC`);
  for (const grant of FUNCTION_GRANTS) await db.raw(`GRANT EXECUTE ON FUNCTION ${grant.fn} TO ${grant.role}`);
  await db.raw(`SELECT ds_copy_grants_to_partitions('records'), ds_copy_grants_to_partitions('record_ids')`);
}

export async function down(db: Knex): Promise<void> {
  // Ownership back to whoever rolls back, and every grant of the four roles in this database revoked. The
  // schema's CREATE is not handed back to PUBLIC: that was a hole on old servers, not a state to restore.
  await db.raw(`
    DO $$ DECLARE object record; BEGIN
      FOR object IN
        SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner = 'ds_migrate'::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
      LOOP
        EXECUTE format(CASE WHEN object.relkind = 'S' THEN 'ALTER SEQUENCE %s OWNER TO %I'
                            ELSE 'ALTER TABLE %s OWNER TO %I' END, object.name, current_user);
      END LOOP;
      FOR object IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.proowner = 'ds_migrate'::regrole
      LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', object.name, current_user);
      END LOOP;
      EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM ds_ingest, ds_query, ds_relay', current_schema());
      EXECUTE format('REVOKE ALL ON SCHEMA %I FROM ds_migrate, ds_ingest, ds_query, ds_relay', current_schema());
      IF pg_has_role(current_user, (SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('REVOKE ALL ON DATABASE %I FROM ds_migrate, ds_ingest, ds_query, ds_relay', current_database());
        EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
      END IF;
    END $$`);
  for (const fn of FUNCTIONS) {
    await db.raw(`REVOKE ALL ON FUNCTION ${fn} FROM ds_ingest, ds_query`);
    await db.raw(`GRANT EXECUTE ON FUNCTION ${fn} TO PUBLIC`);
  }
  await db.raw('DROP FUNCTION IF EXISTS ds_copy_grants_to_partitions(regclass)');
}
