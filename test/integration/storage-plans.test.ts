/**
 * The plans docs/storage.md relies on, asserted on real PostgreSQL: synthetic records (scripts/bench/
 * synthetic-records.ts) in a private database, the statements the real repository and the real
 * maintainPartitions send (captured on their pooled connections, so named prepared statements count too), and
 * `EXPLAIN (ANALYZE)` of exactly that text with its bindings:
 *
 * - by id: two statements, each an index scan on one partition, also with a year's worth of partitions;
 * - every list page: no Sort (the index order is the ORDER BY, and the byte bound's window reads it in that
 *   order) and no Merge Append (an ordered Append that stops early), at most limit + 1 rows;
 * - partition maintenance never blocks traffic: while its ATTACH is uncommitted, and while its DETACH …
 *   CONCURRENTLY waits for an open reader, a list and a 100-row insert (1 s lock_timeout) still go through.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createRecordReader, createRecordWriter, type Database, maintainPartitions, type PartitionPlan } from '#lib/db';
import { uuidv7 } from '#lib/records';
import { COMMON_SOURCE, LONE_SOURCE, loadSyntheticRecords, RARE_TYPE } from '../../scripts/bench/synthetic-records.ts';
import { databaseAt } from '../support/database.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';

const ROWS = 100_000;
const DAY_MS = 86_400_000;
const LIMIT = 101; // the query service asks for limit + 1 to learn whether a next page exists
const PLAN: PartitionPlan = { pastDays: 30, aheadDays: 7, retentionDays: 0, idempotencyTtlHours: 24 };

interface Statement {
  readonly sql: string;
  readonly values: readonly unknown[];
}
interface PgConnection {
  readonly processID: number | null;
  query(...args: unknown[]): unknown;
}
type Send = (sql: string, values?: readonly unknown[]) => Promise<unknown>;

let database: PrivateDatabase;
let db: Database;
let client: pg.Client;

beforeAll(async () => {
  database = await createPrivateDatabase('plans');
  db = databaseAt(database.url, { connectTimeoutMs: 5_000, statementTimeoutMs: 60_000 });
  client = new pg.Client({ connectionString: database.url, application_name: 'tests' });
  await client.connect();
  const endMs = Date.now() - 60_000;
  await loadSyntheticRecords(client, { from: 1, to: ROWS, total: ROWS, startMs: endMs - 6.9 * DAY_MS, endMs });
}, 120_000);

afterAll(async () => {
  await client?.end();
  await db?.destroy();
  await database?.drop();
});

/**
 * Runs `action` with every statement it sends on a pooled connection recorded; `hook` may send a statement itself
 * (with checks around it) instead of letting it through. The pool is patched only while `action` runs.
 */
async function capture(
  action: () => Promise<unknown>,
  hook?: (statement: Statement, send: Send, pid: number) => Promise<unknown> | undefined,
): Promise<Statement[]> {
  const pool = db.client as { acquireConnection(): Promise<PgConnection> };
  const acquire = pool.acquireConnection;
  const seen: Statement[] = [];
  const patched: PgConnection[] = [];
  pool.acquireConnection = async () => {
    const connection = await acquire.call(pool);
    if (patched.includes(connection)) return connection; // the pool hands the same connection out again
    const original = connection.query;
    connection.query = (...args: unknown[]) => {
      const [first, second] = args;
      const statement =
        typeof first === 'string'
          ? { sql: first, values: Array.isArray(second) ? [...second] : [] }
          : {
              sql: String((first as { text?: string }).text ?? ''),
              values: [...((first as { values?: unknown[] }).values ?? [])],
            };
      seen.push(statement);
      const send: Send = (sql, values) => original.call(connection, sql, values && [...values]) as Promise<unknown>;
      return hook?.(statement, send, connection.processID ?? 0) ?? original.apply(connection, args);
    };
    patched.push(connection);
    return connection;
  };
  try {
    await action();
  } finally {
    pool.acquireConnection = acquire;
    for (const connection of patched) Reflect.deleteProperty(connection, 'query');
  }
  return seen.filter((s) => s.sql !== '' && !/^\s*(BEGIN|COMMIT|ROLLBACK|SET|RESET)\b/i.test(s.sql));
}

/** The text plan of a statement as it ran (rolled back, so inserts leave nothing behind). */
async function explain(statement: Statement): Promise<string> {
  await client.query('BEGIN');
  try {
    const result = await client.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${statement.sql}`,
      [...statement.values],
    );
    return result.rows.map((row) => row['QUERY PLAN']).join('\n');
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Distinct partitions of `records` a plan scans or lists (pruned ones do not appear). */
const recordPartitions = (plan: string) => new Set([...plan.matchAll(/ on (records_\d{8})\b/g)].map((m) => m[1]));

const reader = () => createRecordReader(db);
const sampleId = async () =>
  (await client.query<{ id: string }>('SELECT id::text AS id FROM records OFFSET 4242 LIMIT 1')).rows[0]?.id ?? '';

/**
 * The plans PostgreSQL runs inside `ds_find_record` (one round trip from the client): auto_explain reports each
 * nested statement's plan to this session as a NOTICE.
 */
async function nestedPlans(sql: string, values: readonly unknown[]): Promise<string[]> {
  const plans: string[] = [];
  const onNotice = (notice: { message?: string | undefined }) => {
    if (notice.message?.includes('Query Text:')) plans.push(notice.message);
  };
  client.on('notice', onNotice);
  try {
    await client.query("LOAD 'auto_explain'");
    await client.query(
      "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = 'notice'; SET client_min_messages = 'notice'",
    );
    await client.query(sql, [...values]);
  } finally {
    await client.query('RESET auto_explain.log_min_duration; RESET client_min_messages');
    client.off('notice', onNotice);
  }
  return plans;
}

async function expectByIdOnOnePartitionEach(): Promise<void> {
  const id = await sampleId();
  const statements = await capture(() => reader().findById(id));
  expect(statements.map((s) => s.sql)).toEqual([
    'SELECT record_source AS source, record_json AS json FROM ds_find_record_source($1)',
  ]);
  const statement = statements[0] as Statement;
  // The client statement itself reads no table; the two statements inside it each scan one index of one partition.
  const inner = (await nestedPlans(statement.sql, statement.values)).filter((plan) => /Index (Only )?Scan/.test(plan));
  expect(inner).toHaveLength(2);
  for (const plan of inner) {
    expect({ plan, append: /Append/.test(plan), scans: plan.match(/Index (Only )?Scan/g)?.length }).toMatchObject({
      append: false,
      scans: 1,
    });
  }
  expect(recordPartitions(inner.find((plan) => /records_\d{8}/.test(plan)) ?? '').size).toBe(1);
}

describe('storage plans', () => {
  it(
    'reads a record by id in one round trip: one registry partition, then one records partition',
    expectByIdOnOnePartitionEach,
    30_000,
  );

  it('serves every list page from an index in ORDER BY order: no Sort, no Merge Append', async () => {
    const from = new Date(Date.now() - 2 * DAY_MS).toISOString();
    const position = await client.query<{ timestamp: string; id: string }>(
      `SELECT "timestamp"::text AS timestamp, id::text AS id FROM records ORDER BY "timestamp" DESC, id DESC OFFSET 50000 LIMIT 1`,
    );
    const after = position.rows[0] as { timestamp: string; id: string };
    const queries = {
      'no filter': { limit: LIMIT },
      'by source': { source: COMMON_SOURCE, limit: LIMIT },
      'by source and type': { source: COMMON_SOURCE, type: RARE_TYPE, limit: LIMIT },
      'a pair that never occurs': { source: LONE_SOURCE, type: 'page.view', limit: LIMIT },
      'by source from': { source: COMMON_SOURCE, from, limit: LIMIT },
      keyset: { after, limit: LIMIT },
      'by type, keyset': { type: RARE_TYPE, after, limit: LIMIT },
      'by source, cut by bytes': { source: COMMON_SOURCE, limit: LIMIT, maxBytes: 4096 },
    };
    for (const [name, query] of Object.entries(queries)) {
      const [statement, ...more] = await capture(() => reader().list(query));
      expect(more).toHaveLength(0);
      const plan = await explain(statement as Statement);
      // The keyset query's Limit sits under the byte bound's window (lib/db/record-repository.ts#listStatement).
      const returned = Number(/^\s*(?:->\s+)?Limit \(actual rows=(\d+)/m.exec(plan)?.[1] ?? -1);
      expect({ name, plan, sort: /\bSort\b/.test(plan), merge: /Merge Append/.test(plan) }).toMatchObject({
        sort: false,
        merge: false,
      });
      // -1: no Limit node in the plan at all.
      expect({ name, returned: returned >= 0 && returned <= LIMIT }).toEqual({ name, returned: true });
    }
  }, 60_000);

  it('inserts a batch as one statement that plans and runs', async () => {
    const now = Date.now();
    const records = Array.from({ length: 100 }, (_, i) => ({
      id: uuidv7(now),
      source: 'plans-test',
      type: 'insert',
      timestamp: new Date(now - i).toISOString(),
      payload: { i },
      payloadJson: JSON.stringify({ i }),
    }));
    const statements = await capture(() => createRecordWriter({ db, idempotencyTtlHours: 24 }).insert(records));
    expect(statements).toHaveLength(1);
    const statement = statements[0] as Statement;
    // One client statement; inside ds_insert_records, one statement claims, inserts and announces. Run again with
    // the same ids, it claims nothing and compares digests (none: these ids are the service's own).
    const inner = await nestedPlans(statement.sql, statement.values);
    const insert = inner.find((plan) => /Insert on records/.test(plan)) ?? '';
    expect({
      insert,
      registry: /Insert on record_ids/.test(insert),
      outbox: /Insert on outbox/.test(insert),
    }).toMatchObject({ registry: true, outbox: true });
  }, 30_000);

  it('never blocks traffic while maintenance attaches and concurrently detaches partitions', async () => {
    const insert = await capture(() =>
      createRecordWriter({ db, idempotencyTtlHours: 24 }).insert(
        Array.from({ length: 100 }, (_, i) => ({
          id: uuidv7(Date.now()),
          source: 'plans-traffic',
          type: 'insert',
          timestamp: new Date(Date.now() - i).toISOString(),
          payload: { i },
          payloadJson: JSON.stringify({ i }),
        })),
      ),
    );
    const list = await capture(() => reader().list({ source: COMMON_SOURCE, limit: LIMIT }));
    // Traffic from a connection of its own, each statement allowed to wait 1 s for a lock; rolled back.
    const traffic = async (): Promise<string> => {
      const other = new pg.Client({ connectionString: database.url });
      await other.connect();
      try {
        await other.query('BEGIN');
        await other.query(`SET LOCAL lock_timeout = '1s'`);
        for (const s of [...list, ...insert]) await other.query(s.sql, [...s.values]);
        return 'ok';
      } catch (error) {
        return String(error);
      } finally {
        await other.query('ROLLBACK').catch(() => undefined);
        await other.end();
      }
    };
    const findings: Record<string, string> = {};
    const hook = (statement: Statement, send: Send, pid: number) => {
      // ds_create_record_partition (migration 0010) creates the table and ATTACHes it in one transaction.
      if (findings.attach === undefined && /^SELECT ds_create_record_partition\(/.test(statement.sql)) {
        return (async () => {
          await send('BEGIN');
          const attached = await send(statement.sql, statement.values);
          findings.attach = await traffic();
          await send('COMMIT');
          return attached;
        })();
      }
      if (/ DETACH PARTITION \S+ CONCURRENTLY$/.test(statement.sql)) {
        return (async () => {
          await client.query('BEGIN');
          await client.query('SELECT 1 FROM records LIMIT 1'); // a reader that began before the detach
          const detached = send(statement.sql);
          let waiting = false;
          for (let i = 0; i < 250 && !waiting; i++) {
            waiting =
              (await client.query('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [pid])).rows.length > 0;
            if (!waiting) await new Promise((resolve) => setTimeout(resolve, 20));
          }
          findings.detach = waiting ? await traffic() : 'the detach did not wait for the open reader';
          await client.query('COMMIT');
          return detached;
        })();
      }
      return undefined;
    };
    let report: Awaited<ReturnType<typeof maintainPartitions>> | undefined;
    // One more day ahead (an ATTACH), and retention that retires the oldest, empty, day (a DETACH).
    await capture(async () => {
      report = await maintainPartitions(db, { ...PLAN, aheadDays: PLAN.aheadDays + 1, retentionDays: PLAN.pastDays });
    }, hook);
    expect(report?.created.length).toBeGreaterThan(0);
    expect(report?.dropped.length).toBeGreaterThan(0);
    expect(findings).toEqual({ attach: 'ok', detach: 'ok' });
  }, 60_000);

  it('still reads by id from one partition each with a year of daily partitions', async () => {
    const added = await maintainPartitions(db, { ...PLAN, pastDays: 365 });
    try {
      expect(added.created.length).toBeGreaterThan(300);
      await client.query('ANALYZE records');
      await expectByIdOnOnePartitionEach();
    } finally {
      for (const name of added.created) await client.query(`DROP TABLE IF EXISTS "${name}"`);
    }
  }, 120_000);
});
