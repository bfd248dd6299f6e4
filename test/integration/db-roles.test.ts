/**
 * Least privilege below the app (invariant 7), on real PostgreSQL: migration 0007's group roles, with LOGIN users
 * created in them the way docs/security.md tells an operator to. Each function's real code runs connected as its
 * own user — the ingest and query apps over HTTP, the relay's outbox repository, partition maintenance — and
 * everything outside each role's job is refused with SQLSTATE 42501.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  createOutboxRepository,
  createRecordReader,
  createRecordWriter,
  type Database,
  MaintenancePrivilegeError,
  maintainPartitions,
  migrateToLatest,
  partitionName,
  schedulePartitionMaintenance,
} from '#lib/db';
import type { NewRecord } from '#lib/records';
import { getJson, postJson, startTestApp, type TestApp, uniqueSource } from '../support/app.ts';
import { createTestDatabase, databaseAt, testDatabaseUrl } from '../support/database.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';

const DAY = 86_400_000;
const PLAN = { pastDays: 1, aheadDays: 2, retentionDays: 0, idempotencyTtlHours: 24 };
// LOGIN users are cluster-global like the roles: a random prefix keeps parallel runs apart.
const PREFIX = `t${randomBytes(3).toString('hex')}`;
const USERS = {
  migrate: { name: `${PREFIX}_migrate_app`, roles: ['ds_migrate'] },
  ingest: { name: `${PREFIX}_ingest_app`, roles: ['ds_ingest'] },
  // Production's ingest while it runs the relay in-process (RELAY_ENABLED=true): both roles, nothing more.
  ingestRelay: { name: `${PREFIX}_ingest_relay_app`, roles: ['ds_ingest', 'ds_relay'] },
  query: { name: `${PREFIX}_query_app`, roles: ['ds_query'] },
  relay: { name: `${PREFIX}_relay_app`, roles: ['ds_relay'] },
} as const;
type User = keyof typeof USERS;

let database: PrivateDatabase;
let admin: Database;
const pools = new Map<User, Database>();

/** The private database's URL, logged in as `user` (pg_hba here trusts loopback; the password is the operator's step). */
function urlOf(user: User): string {
  const url = new URL(database.url);
  url.username = USERS[user].name;
  url.password = 'not-checked-on-loopback';
  return url.href;
}

function as(user: User): Database {
  let db = pools.get(user);
  if (db === undefined) {
    db = databaseAt(urlOf(user), { applicationName: `tests:${user}` });
    pools.set(user, db);
  }
  return db;
}

/** What a statement does when `user` runs it: 'ok', or the SQLSTATE it fails with. */
const outcome = (db: Database, sql: string): Promise<string> =>
  db.raw(sql).then(
    () => 'ok',
    (error: { code?: string; message?: string }) => error.code ?? String(error.message),
  );

const OK = 'ok';
const DENIED = '42501'; // insufficient_privilege: permission denied, or "must be owner of"

/** Runs each statement as `user`; one comparison of [statement, outcome] pairs shows every difference at once. */
async function expectOutcomes(user: User, cases: ReadonlyArray<readonly [string, string]>): Promise<void> {
  const actual: Array<readonly [string, string]> = [];
  for (const [sql] of cases) actual.push([sql, await outcome(as(user), sql)]);
  expect(actual).toEqual(cases);
}

/** Statements outside every app role's job: DDL of every kind, and what only maintenance may delete. */
const DDL: ReadonlyArray<readonly [string, string]> = [
  ['CREATE TABLE intruder (id int)', DENIED],
  // TEMPORARY is revoked from PUBLIC by the migration: no function of the service uses temporary tables.
  ['CREATE TEMP TABLE intruder (id int)', DENIED],
  ['CREATE FUNCTION intruder() RETURNS int LANGUAGE sql RETURN 1', DENIED],
  ['CREATE INDEX intruder ON records (source)', DENIED],
  ['ALTER TABLE records ADD COLUMN intruder int', DENIED],
  ['TRUNCATE records', DENIED],
  ['DROP TABLE outbox', DENIED],
  [`SELECT ds_copy_grants_to_partitions('records')`, DENIED],
  // Migration 0010: creating any day is the owner's; ds_ingest may only ask for a day of the write window.
  [`SELECT ds_create_record_partition('2001-01-01')`, DENIED],
];

const newRecord = (source: string, timestamp: string): NewRecord => ({
  id: randomUUID(),
  source,
  type: 'roles',
  timestamp,
  payload: { n: 1 },
  payloadJson: '{"n":1}',
});

beforeAll(async () => {
  database = await createPrivateDatabase('roles');
  admin = databaseAt(database.url, { statementTimeoutMs: 30_000 });
  // Exactly the operator's statement from docs/security.md.
  for (const { name, roles } of Object.values(USERS)) {
    await admin.raw(`CREATE ROLE ${name} LOGIN PASSWORD 'not-checked-on-loopback' IN ROLE ${roles.join(', ')}`);
  }
}, 60_000);

afterAll(async () => {
  for (const db of pools.values()) await db.destroy();
  await admin?.destroy();
  await database?.drop();
  // The users own nothing (maintenance creates as ds_migrate), so dropping the database leaves them droppable.
  const cluster = createTestDatabase(1);
  try {
    for (const { name } of Object.values(USERS)) await cluster.raw(`DROP ROLE IF EXISTS ${name}`);
  } finally {
    await cluster.destroy();
  }
}, 60_000);

describe('the roles migration 0007 creates', () => {
  it('four NOLOGIN group roles without any attribute beyond INHERIT', async () => {
    const result = await admin.raw(`
      SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit
      FROM pg_roles WHERE rolname LIKE 'ds\\_%' ORDER BY rolname`);
    const plain = {
      rolcanlogin: false,
      rolsuper: false,
      rolcreatedb: false,
      rolcreaterole: false,
      rolreplication: false,
      rolbypassrls: false,
      rolinherit: true,
    };
    expect(result.rows).toEqual(
      ['ds_ingest', 'ds_migrate', 'ds_query', 'ds_relay'].map((rolname) => ({ rolname, ...plain })),
    );
  });

  it('exactly these privileges on every table and function of the schema, all owned by ds_migrate', async () => {
    // Every privilege anyone but the owner holds, from the catalog: a table or function a later migration adds
    // shows up here without grants (or with PUBLIC's EXECUTE), so its author must decide and update this list.
    const result = await admin.raw(`
      WITH objects AS (
        SELECT c.relname::text AS object, c.relowner AS owner, c.relacl AS acl, NULL::text AS col FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND NOT c.relispartition
        UNION ALL
        SELECT c.relname::text, c.relowner, a.attacl, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND a.attacl IS NOT NULL AND NOT c.relispartition
        UNION ALL
        SELECT p.oid::regprocedure::text, p.proowner, coalesce(p.proacl, acldefault('f', p.proowner)), NULL
        FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
      )
      SELECT o.object || coalesce('.' || o.col, '') || ': '
               || CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END || ' ' || g.privilege_type
             AS grant
      FROM objects o, aclexplode(o.acl) g WHERE g.grantee <> o.owner`);
    expect((result.rows as Array<{ grant: string }>).map((row) => row.grant).sort()).toEqual(
      [
        'ds_find_record(uuid): ds_query EXECUTE',
        'ds_find_record_source(uuid): ds_query EXECUTE',
        'ds_insert_records(json): ds_ingest EXECUTE',
        'ds_ensure_record_partition(date): ds_ingest EXECUTE',
        'ds_record_digest(text,text,timestamp with time zone,jsonb): ds_ingest EXECUTE',
        'archive_days: ds_ingest SELECT',
        'archive_days: ds_query SELECT',
        'outbox_dead_letter: ds_relay INSERT',
        'outbox_dead_letter: ds_relay SELECT',
        'outbox_dead_letter.dead_lettered_at: ds_ingest SELECT',
        'ds_record_event_json(text): ds_ingest EXECUTE',
        'ds_record_json(uuid,text,text,timestamp with time zone,jsonb,timestamp with time zone): ds_ingest EXECUTE',
        'ds_record_json(uuid,text,text,timestamp with time zone,jsonb,timestamp with time zone): ds_query EXECUTE',
        'ds_utc_text(timestamp with time zone): ds_ingest EXECUTE',
        'ds_utc_text(timestamp with time zone): ds_query EXECUTE',
        'idempotency_keys: ds_ingest INSERT',
        'idempotency_keys: ds_ingest SELECT',
        'idempotency_keys.created_at: ds_ingest UPDATE',
        'idempotency_keys.fingerprint: ds_ingest UPDATE',
        'idempotency_keys.response: ds_ingest UPDATE',
        'outbox: ds_relay DELETE',
        'outbox: ds_relay SELECT',
        'outbox.created_at: ds_ingest SELECT',
        'outbox.event: ds_ingest INSERT',
        'outbox.record_id: ds_ingest INSERT',
        'outbox.trace: ds_ingest INSERT',
        'outbox.trace: ds_relay UPDATE',
        'record_ids: ds_ingest INSERT',
        'record_ids: ds_ingest SELECT',
        'record_ids: ds_query SELECT',
        'records: ds_ingest INSERT',
        'records: ds_ingest SELECT',
        'records: ds_query SELECT',
      ].sort(),
    );
    const owners = await admin.raw(`
      SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class
      WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'S', 'i', 'I')
      UNION SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace`);
    expect(owners.rows).toEqual([{ owner: 'ds_migrate' }]);
  });
});

describe('ds_query', () => {
  it('reads records (by id through ds_find_record, and lists) and nothing else', async () => {
    const id = randomUUID();
    await expectOutcomes('query', [
      [`SELECT ds_find_record('${id}')`, OK],
      ['SELECT id, ds_record_json(id, source, type, "timestamp", payload, received_at) FROM records LIMIT 1', OK],
      ['SELECT count(*) FROM record_ids', OK],
      ['SELECT count(*) FROM outbox', DENIED],
      ['SELECT count(*) FROM idempotency_keys', DENIED],
      ['SELECT count(*) FROM knex_migrations', DENIED],
      [`SELECT ds_record_event_json('{}')`, DENIED],
      [`INSERT INTO records (id, source, type, "timestamp", payload) VALUES ('${id}', 's', 't', now(), '{}')`, DENIED],
      [`INSERT INTO record_ids (id, "timestamp") VALUES ('${id}', now())`, DENIED],
      [`UPDATE records SET payload = '{}' WHERE false`, DENIED],
      ['DELETE FROM records WHERE false', DENIED],
      ['DELETE FROM record_ids WHERE false', DENIED],
      [`INSERT INTO outbox (record_id, event) VALUES ('${id}', '{}')`, DENIED],
      ...DDL,
    ]);
  });
});

describe('ds_relay', () => {
  it('claims, publishes and deletes outbox rows through the real repository, and touches nothing else', async () => {
    const recordId = randomUUID();
    await admin.raw(`INSERT INTO outbox (record_id, event) VALUES (?, '{"event":"test"}')`, [recordId]);
    const outbox = createOutboxRepository(as('relay'));
    expect((await outbox.backlog()).rows).toBeGreaterThanOrEqual(1);
    const published: string[] = [];
    for (let claimed = 1; claimed > 0; ) {
      ({ claimed } = await outbox.relayBatch({ rows: 100, bytes: 1024 * 1024 }, async (entries) => {
        published.push(...entries.map((e) => e.recordId));
        return { acknowledged: entries.map((e) => e.id), deadLetters: [] };
      }));
    }
    expect(published).toContain(recordId);
    expect(await outbox.backlog()).toEqual({ rows: 0, oldestAgeMs: 0, deadLetters: 0 });

    await expectOutcomes('relay', [
      [`INSERT INTO outbox (record_id, event) VALUES ('${recordId}', '{}')`, DENIED],
      [`UPDATE outbox SET event = '{}' WHERE false`, DENIED],
      ['SELECT count(*) FROM records', DENIED],
      ['SELECT count(*) FROM record_ids', DENIED],
      ['SELECT count(*) FROM idempotency_keys', DENIED],
      [`SELECT ds_find_record('${recordId}')`, DENIED],
      ['DELETE FROM records WHERE false', DENIED],
      ...DDL,
    ]);
  });
});

describe('ds_ingest and ds_query behind the real apps', () => {
  let app: TestApp;
  beforeAll(async () => {
    // Each function connected as its own user, as the production manifests give each its own Secret.
    app = await startTestApp({ databaseUrl: urlOf('ingest'), queryDatabaseUrl: urlOf('query'), responseTier: false });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('accepts writes over HTTP (group commit, batches, duplicates, idempotency keys) and serves them back', async () => {
    const source = uniqueSource('roles');
    const one = await postJson(app, { source, type: 'roles', payload: { n: 1 } });
    expect(one.status).toBe(201);
    const id = (one.json.records as Array<{ id: string }>)[0]?.id ?? '';

    const batch = await postJson(app, {
      records: [
        { id, source, type: 'roles', payload: { n: 1 } },
        { source, type: 'roles', payload: { n: 2 } },
      ],
    });
    expect({
      status: batch.status,
      statuses: (batch.json.records as Array<{ status: string }>).map((r) => r.status),
    }).toEqual({ status: 201, statuses: ['duplicate', 'created'] });

    // Idempotency-Key: first write, replay, mismatch — and an expired key overwritten (ON CONFLICT DO UPDATE).
    const key = `roles-${randomUUID()}`;
    const body = { source, type: 'roles', payload: { n: 3 } };
    const first = await postJson(app, body, { 'idempotency-key': key });
    const replay = await postJson(app, body, { 'idempotency-key': key });
    const mismatch = await postJson(app, { ...body, payload: { n: 4 } }, { 'idempotency-key': key });
    expect([first.status, replay.status, mismatch.status]).toEqual([201, 201, 422]);
    expect(replay.json).toEqual(first.json);
    const expired = `roles-${randomUUID()}`;
    await admin.raw(
      `INSERT INTO idempotency_keys (key, fingerprint, response, created_at)
       VALUES (?, 'old', '{}', now() - interval '48 hours')`,
      [expired],
    );
    expect((await postJson(app, body, { 'idempotency-key': expired })).status).toBe(201);

    const byId = await getJson(`${app.queryUrl}/data/${id}`);
    expect({ status: byId.status, source: byId.json.source }).toEqual({ status: 200, source });
    expect((await getJson(`${app.queryUrl}/data/${randomUUID()}`)).status).toBe(404);
    const list = await getJson(`${app.queryUrl}/data?source=${source}&limit=10`);
    expect({ status: list.status, count: (list.json.records as unknown[]).length }).toEqual({ status: 200, count: 4 });

    // The events wait in the outbox (this app has no relay): ingest wrote them, and may count them.
    expect((await createOutboxRepository(as('ingest')).backlog()).rows).toBeGreaterThanOrEqual(4);
  });

  it('ds_ingest may not read events, delete, or change anything but an expired idempotency key', async () => {
    await expectOutcomes('ingest', [
      ['SELECT count(*), min(created_at) FROM outbox', OK],
      ['SELECT event FROM outbox LIMIT 1', DENIED],
      ['DELETE FROM outbox WHERE false', DENIED],
      ['DELETE FROM records WHERE false', DENIED],
      ['DELETE FROM record_ids WHERE false', DENIED],
      ['DELETE FROM idempotency_keys WHERE false', DENIED],
      [`UPDATE records SET payload = '{}' WHERE false`, DENIED],
      [`UPDATE idempotency_keys SET key = 'x' WHERE false`, DENIED],
      ['SELECT count(*) FROM knex_migrations', DENIED],
      ...DDL,
    ]);
  });
});

describe('ds_ingest with the relay in-process (a member of ds_relay too)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({
      databaseUrl: urlOf('ingestRelay'),
      kafka: { topic: `roles-${randomUUID().slice(0, 8)}`, partitions: 1 },
    });
  }, 30_000);
  afterAll(async () => {
    await app?.close();
  }, 30_000);

  it('commits and relays its events to Kafka', async () => {
    const response = await postJson(app, { source: uniqueSource('roles'), type: 'roles', payload: { n: 1 } });
    expect(response.status).toBe(201);
    const deadline = Date.now() + 20_000;
    while ((app.relay?.status().eventsPublished ?? 0) < 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(app.relay?.status()).toMatchObject({ brokerReachable: true, publishErrors: 0 });
    expect(app.relay?.status().eventsPublished).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

describe('partition maintenance', () => {
  it('is refused to ds_ingest before it touches anything; the in-process schedule logs once and stops', async () => {
    await expect(maintainPartitions(as('ingest'), PLAN)).rejects.toBeInstanceOf(MaintenancePrivilegeError);
    const warnings: Array<{ obj: object; msg: string }> = [];
    const log = { info: () => undefined, warn: (obj: object, msg: string) => warnings.push({ obj, msg }) };
    const schedule = schedulePartitionMaintenance(as('ingest'), PLAN, log, { intervalMs: 20, retryMs: 20 });
    await schedule.firstRun;
    await new Promise((resolve) => setTimeout(resolve, 200));
    await schedule.stop();
    expect(warnings).toEqual([
      {
        obj: { role: USERS.ingest.name, owner: 'ds_migrate' },
        msg: expect.stringContaining(`role ${USERS.ingest.name} may not maintain partitions`),
      },
    ]);
  });

  it('creates partitions as ds_migrate (whoever logs in), with the parent grants, usable by every role', async () => {
    const future = Date.now() + 90 * DAY;
    const report = await maintainPartitions(as('migrate'), PLAN, future);
    const day = partitionName(Math.floor(future / DAY) * DAY);
    expect(report.created).toContain(day);
    const acl = await admin.raw(
      `SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relacl::text = p.relacl::text AS same_grants
       FROM pg_class c, pg_class p WHERE c.relname = ANY(?) AND p.relname = 'records' ORDER BY 1`,
      [report.created],
    );
    expect(acl.rows).toEqual(
      [...report.created].sort().map((relname) => ({ relname, owner: 'ds_migrate', same_grants: true })),
    );
    // The pooled connection came back as the login user: maintenance reset its role.
    expect((await as('migrate').raw('SELECT current_user AS me')).rows).toEqual([{ me: USERS.migrate.name }]);

    // The real write and read paths into the new partition (the HTTP validator's window would refuse this day).
    const source = uniqueSource('roles');
    const record = newRecord(source, new Date(future).toISOString());
    const writer = createRecordWriter({ db: as('ingest'), idempotencyTtlHours: 24 });
    expect(await writer.insert([record])).toEqual([{ id: record.id, status: 'created' }]);
    const reader = createRecordReader(as('query'));
    expect(JSON.parse((await reader.findById(record.id))?.json ?? 'null')).toMatchObject({ id: record.id, source });
    expect((await reader.list({ source, limit: 10 })).map((row) => row.id)).toEqual([record.id]);
    await expectOutcomes('query', [
      [`SELECT count(*) FROM ${day}`, OK],
      [`DELETE FROM ${day} WHERE false`, DENIED],
    ]);

    // PostgreSQL checks only the parent for what goes through it: without its copy of the grants the partition
    // still serves the query role through records, and refuses it by name.
    await admin.raw(`REVOKE ALL ON ${day} FROM ds_query`);
    expect(JSON.parse((await reader.findById(record.id))?.json ?? 'null')).toMatchObject({ id: record.id });
    await expectOutcomes('query', [[`SELECT count(*) FROM ${day}`, DENIED]]);
  });

  it('a migrate user runs the migrations (knex takes its lock as ds_migrate) and may default to the role', async () => {
    expect(await migrateToLatest(as('migrate'))).toEqual([]);
    // docs/security.md: ALTER ROLE … SET role makes what a later migration creates ds_migrate's too.
    await admin.raw(`ALTER ROLE ${USERS.migrate.name} SET role = 'ds_migrate'`);
    const fresh = databaseAt(urlOf('migrate'), { poolMax: 1, applicationName: 'tests:migrate' });
    try {
      const who = await fresh.raw('SELECT current_user AS me, session_user AS login');
      expect(who.rows).toEqual([{ me: 'ds_migrate', login: USERS.migrate.name }]);
    } finally {
      await fresh.destroy();
    }
  });
});

describe('a non-superuser admin (as RDS gives one: CREATEROLE, owner of the database)', () => {
  const adminName = `${PREFIX}_rds_admin`;
  const name = `${new URL(testDatabaseUrl()).pathname.slice(1)}_rdsadmin_${randomBytes(3).toString('hex')}`;
  const cluster = () => createTestDatabase(1);
  afterAll(async () => {
    const db = cluster();
    try {
      await db.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await db.raw(`DROP ROLE IF EXISTS ${adminName}`);
    } finally {
      await db.destroy();
    }
  });

  it('runs every migration and maintenance, leaving everything owned by ds_migrate', async () => {
    const setup = cluster();
    try {
      await setup.raw(`CREATE ROLE ${adminName} LOGIN CREATEROLE PASSWORD 'not-checked-on-loopback'`);
      await setup.raw(`CREATE DATABASE ${name} OWNER ${adminName}`);
    } finally {
      await setup.destroy();
    }
    const url = new URL(testDatabaseUrl());
    url.pathname = `/${name}`;
    url.username = adminName;
    url.password = 'not-checked-on-loopback';
    const db = databaseAt(url.href, { poolMax: 1, statementTimeoutMs: 30_000, applicationName: 'tests:rds-admin' });
    try {
      expect(await migrateToLatest(db)).toContain('0007-roles');
      expect((await maintainPartitions(db, PLAN)).created.length).toBeGreaterThan(0);
      const owners = await db.raw(`
        SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class
        WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'S')`);
      expect(owners.rows).toEqual([{ owner: 'ds_migrate' }]);
    } finally {
      await db.destroy();
    }
  });
});
