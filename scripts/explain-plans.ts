/**
 * Produces the EXPLAIN evidence of docs/storage.md: loads ROWS synthetic records into a scratch database, then
 * prints EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) for every statement the record repository runs, checks
 * which locks partition maintenance holds while traffic goes on, and explains the registry retention delete.
 *
 *   node scripts/explain-plans.ts
 *
 * Environment:
 * - DATABASE_URL: default postgres://postgres@127.0.0.1:25432/data_service_explain. The name must contain "explain"
 *   or "bench": the script drops and recreates its public schema.
 * - ROWS: default 1000000, spread over the last ~7 days.
 * - STRESS_DAYS: default 365. Afterwards, empty daily partitions are added back to that many days (a year of
 *   retention), the statements that cannot prune at plan time are explained again, and the partitions are dropped.
 *   0 skips this.
 * - REUSE=1: keep the data of a previous run (same day) when it holds ROWS rows.
 * - REPEAT: default 3. Each read is explained this many times and the fastest run is reported.
 *
 * The SQL is not copied: the script calls the real repository (createRecordRepository) and the real
 * maintainPartitions, captures the statements and bindings they send, and explains exactly that text. Each read
 * is explained once unprinted first, so the figures are those of a warm connection (relation cache and buffers),
 * as in production. Rows labelled SUGGESTED are not what the code runs; they back the open items of the doc.
 */
import pg from 'pg';
import {
  createDatabase,
  createRecordRepository,
  databaseNameOf,
  type MaintenanceReport,
  maintainPartitions,
  migrateToLatest,
  type PartitionPlan,
} from '#lib/db';
import { type KeysetPosition, type NewRecord, type RecordStore, uuidv7 } from '#lib/records';

const DAY_MS = 86_400_000;
const CHUNK = 100_000;
/** Data covers [now - SPAN_DAYS, now - 1 min]: inside the accepted write window (RECORD_MAX_PAST_DAYS = 7). */
const SPAN_DAYS = 6.9;
const PAST_DAYS = 7;
const AHEAD_DAYS = 7;
const PLAN: PartitionPlan = { pastDays: PAST_DAYS, aheadDays: AHEAD_DAYS, retentionDays: 0, idempotencyTtlHours: 24 };
const LIMIT = 101; // the query service asks for limit + 1 to learn whether a next page exists
const EXPLAIN = 'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ';
const COMMON_SOURCE = 'source-00'; // ≈ 22 % of rows
const RARE_TYPE = 'order.refunded'; // ≈ 4 % of rows
const LONE_SOURCE = 'batch-job'; // 1 % of rows, always of type job.finished
/** findById sends up to two statements: the registry lookup, then the record from one partition. */
const BY_ID_PARTS = ['1 registry', '2 record'] as const;

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:25432/data_service_explain';
const rows = nonNegativeInt('ROWS', 1_000_000);
const stressDays = nonNegativeInt('STRESS_DAYS', 365);
const repeat = Math.max(1, nonNegativeInt('REPEAT', 3));
const reuse = process.env.REUSE === '1';

const dbName = databaseNameOf(url);
if (!/explain|bench/.test(dbName)) {
  console.error(`refusing to run against "${dbName}": the database name must contain "explain" or "bench"`);
  process.exit(2);
}

interface Captured {
  readonly sql: string;
  readonly bindings: readonly unknown[];
}

interface PlanFacts {
  readonly label: string;
  readonly planningMs: number;
  readonly executionMs: number;
  /** Partition scans that ran / partitions in the plan (after plan-time pruning); '-' for inserts. */
  readonly partitions: string;
  readonly indexes: string[];
  readonly rowsRead: number;
  readonly rowsReturned: number;
  readonly buffers: string;
  /** Relation locks the statement left held on public tables and indexes, and how many missed the fast path. */
  readonly locks: string;
}

/** The node-pg connection knex hands out (maintainPartitions talks to it directly). */
interface PgConnection {
  readonly processID: number | null;
  query(...args: unknown[]): unknown;
}

type Send = (sql: string, params?: unknown[]) => Promise<unknown>;
/** Runs one statement of maintainPartitions: `send` it unchanged, possibly with checks around it. */
type MaintenanceHook = (statement: Captured, send: Send, pid: number) => Promise<unknown>;

const db = createDatabase({
  url,
  poolMax: 2,
  connectTimeoutMs: 5_000,
  statementTimeoutMs: 600_000,
  applicationName: 'explain-plans',
});
const client = new pg.Client({ connectionString: url, application_name: 'explain-plans' });
await client.connect();
const summary: PlanFacts[] = [];
const maintenanceFindings: string[] = [];

try {
  if (reuse && (await countRows()) === rows) {
    await migrateToLatest(db);
    console.log(`reusing ${rows} loaded rows`);
  } else {
    await resetSchema();
    await load();
  }
  await reportSizes();
  const repository = createRecordRepository({ db, idempotencyTtlHours: 24 });
  await explainRepositoryQueries(repository);
  await explainInsert();
  await explainMaintenance();
  if (stressDays > PAST_DAYS) await explainWithManyPartitions(repository);
  printSummary();
} finally {
  await client.end();
  await db.destroy();
}

function nonNegativeInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer`);
  return value;
}

async function countRows(): Promise<number> {
  try {
    const result = await client.query<{ n: string }>('SELECT count(*) AS n FROM records');
    return Number(result.rows[0]?.n ?? -1);
  } catch {
    return -1;
  }
}

async function resetSchema(): Promise<void> {
  // Everything the migrations create lives in the public schema of this scratch database.
  await client.query('DROP SCHEMA public CASCADE');
  await client.query('CREATE SCHEMA public');
  await migrateToLatest(db);
  const report = await maintainPartitions(db, PLAN);
  console.log(`migrated; ${report.created.length} daily partitions created (timescale: ${report.timescale})`);
}

/**
 * One INSERT … SELECT per chunk; a data-modifying CTE claims the ids in record_ids in the same statement, as the
 * repository does (the outbox is left empty: a relay would have drained it). Timestamps rise with the row number
 * (as live ingest does) with sub-row-slot jitter; 70 % of ids are UUIDv7 derived from the timestamp
 * (server-assigned), 30 % random v4 (client-supplied). Sources and types are skewed: of the 99 % that are not
 * batch-job rows, source-00 ≈ 22 % … source-19 ≈ 2.5 %, and page.view ≈ 50 % … order.refunded ≈ 4 %.
 */
async function load(): Promise<void> {
  const end = Date.now() - 60_000;
  const start = end - SPAN_DAYS * DAY_MS;
  await client.query('SET synchronous_commit = off');
  const began = performance.now();
  for (let lo = 1; lo <= rows; lo += CHUNK) {
    const hi = Math.min(rows, lo + CHUNK - 1);
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
                  ELSE 'source-' || lpad(floor(20 * r1 * r1)::int::text, 2, '0') END AS source,
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
      [lo, hi, start, end, rows],
    );
    process.stdout.write(`\rloaded ${hi} / ${rows} rows (${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
  process.stdout.write('\n');
  await client.query('RESET synchronous_commit');
  // VACUUM sets the visibility map; ANALYZE gathers per-partition statistics (autovacuum never analyzes the
  // partitioned parent itself).
  await client.query('VACUUM (ANALYZE) records');
  await client.query('VACUUM (ANALYZE) record_ids');
  console.log(`load + vacuum analyze: ${((performance.now() - began) / 1000).toFixed(1)} s`);
}

async function reportSizes(): Promise<void> {
  const result = await client.query<{ name: string; bytes: string; per_row: string }>(
    `WITH parts AS (
       SELECT p.relname AS parent, c.oid, c.relname FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
       WHERE p.relname IN ('records', 'record_ids')
     ), sizes AS (
       SELECT parent || ' heap' AS name, sum(pg_relation_size(oid)) AS bytes FROM parts GROUP BY parent
       UNION ALL
       SELECT parent || ' index ' || regexp_replace(x.relname, '^' || parts.relname || '_', '') || ' (' || am.amname || ')',
              sum(pg_relation_size(x.oid))
       FROM parts JOIN pg_index ix ON ix.indrelid = parts.oid JOIN pg_class x ON x.oid = ix.indexrelid
       JOIN pg_am am ON am.oid = x.relam
       GROUP BY 1
     )
     SELECT name, pg_size_pretty(bytes) AS bytes, round(bytes / $1::numeric, 1) AS per_row FROM sizes ORDER BY name`,
    [rows],
  );
  const facts = await client.query<{ n: string; parts: string; version: string }>(
    `SELECT (SELECT count(*) FROM records) AS n,
            (SELECT count(*) FROM pg_inherits WHERE inhparent = 'records'::regclass) AS parts,
            current_setting('server_version') AS version`,
  );
  const f = facts.rows[0];
  console.log(
    `\n=== ${f?.n} rows in ${f?.parts} daily partitions; PostgreSQL ${f?.version}; measured ${new Date().toISOString()} ===`,
  );
  for (const row of result.rows) console.log(`${row.name.padEnd(44)} ${row.bytes.padStart(8)}  ${row.per_row} B/row`);
}

/** Runs `action` and returns the statements it sent through `runner` (knex or a knex transaction). */
async function captureAll(
  action: () => Promise<unknown>,
  runner: { on: typeof db.on; off: typeof db.off } = db,
): Promise<Captured[]> {
  const seen: Captured[] = [];
  const listener = (query: { sql: string; bindings?: readonly unknown[] }) => {
    seen.push({ sql: query.sql, bindings: [...(query.bindings ?? [])] });
  };
  runner.on('query', listener);
  try {
    await action();
  } finally {
    runner.off('query', listener);
  }
  return seen.filter((q) => !/^\s*(BEGIN|COMMIT|ROLLBACK)/i.test(q.sql));
}

/** Like captureAll, for an action that sends exactly one statement. */
async function capture(action: () => Promise<unknown>, runner?: { on: typeof db.on; off: typeof db.off }) {
  const statements = await captureAll(action, runner);
  const [only] = statements;
  if (only === undefined || statements.length > 1) throw new Error(`expected one statement, saw ${statements.length}`);
  return only;
}

async function explainText(query: Captured): Promise<string[]> {
  const result = await client.query<{ 'QUERY PLAN': string }>(EXPLAIN + query.sql, [...query.bindings]);
  return result.rows.map((row) => row['QUERY PLAN']);
}

async function heldLocks(): Promise<string> {
  const result = await client.query<{ total: string; slow: string }>(
    `SELECT count(*) AS total, count(*) FILTER (WHERE NOT l.fastpath) AS slow
     FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE l.pid = pg_backend_pid() AND c.relnamespace = 'public'::regnamespace`,
  );
  const row = result.rows[0];
  return `${row?.total ?? '?'} (${row?.slow ?? '?'} not fast-path)`;
}

/**
 * Explains a read statement: once unprinted to warm the connection, then REPEAT times inside a transaction (rolled
 * back) so that the relation locks it takes can be counted. The fastest run (planning + execution) is printed and
 * summarised: the machine is shared, and the plans, buffers and locks are the same in every run.
 */
async function explainRead(label: string, query: Captured, note = ''): Promise<void> {
  await explainText(query);
  let best: { lines: string[]; locks: string; ms: number } | undefined;
  for (let i = 0; i < repeat; i++) {
    await client.query('BEGIN');
    try {
      const lines = await explainText(query);
      const facts = planFacts(label, lines, '');
      const ms = facts.planningMs + facts.executionMs;
      if (best === undefined || ms < best.ms) best = { lines, locks: await heldLocks(), ms };
    } finally {
      await client.query('ROLLBACK');
    }
  }
  if (best !== undefined) report(label, note, query, best.lines, best.locks);
}

function report(label: string, note: string, query: Captured, lines: string[], locks: string): void {
  console.log(`\n--- ${label}${note ? ` (${note})` : ''}`);
  console.log(
    query.sql
      .trim()
      .split('\n')
      .map((line) => `    ${line.trim()}`)
      .join('\n'),
  );
  const shortArrays = (key: string, value: unknown) =>
    key !== '' && Array.isArray(value) ? `[${value.length} values]` : value;
  console.log(`    -- bindings: ${JSON.stringify(query.bindings, shortArrays)}; relation locks held: ${locks}`);
  for (const line of lines) console.log(line);
  summary.push(planFacts(label, lines, locks));
}

/**
 * Partitions scanned or skipped, indexes used and rows read, parsed from the text plan. Partitions are those of
 * `records` when the plan has any, of `record_ids` otherwise; rows read count both. A DELETE "returns" the rows
 * its child node fed it.
 */
function planFacts(label: string, lines: string[], locks: string): PlanFacts {
  const time = (re: RegExp): number => {
    for (const line of lines) {
      const match = re.exec(line);
      if (match?.[1] !== undefined) return Number(match[1]);
    }
    return Number.NaN;
  };
  const partitionName = /^(records_\d{8}|record_ids_p\d+)_/;
  const counts = { records: { scanned: 0, planned: 0 }, record_ids: { scanned: 0, planned: 0 } };
  let rowsRead = 0;
  let lastLoops = 0;
  let removedPending = 0;
  const indexes = new Set<string>();
  for (const line of lines) {
    const scan =
      /(Index Only Scan|Index Scan|Bitmap Heap Scan|Seq Scan)(?: Backward)?(?: using (\S+))? on (records|record_ids)_(?:\d{8}|p\d+) /.exec(
        line,
      );
    if (scan) {
      const family = scan[3] === 'records' ? counts.records : counts.record_ids;
      // "Subplans Removed" precedes the first surviving child of the Append it belongs to.
      family.planned += 1 + removedPending;
      removedPending = 0;
      if (line.includes('never executed')) {
        lastLoops = 0;
        continue;
      }
      family.scanned++;
      indexes.add(scan[2] === undefined ? (scan[1] ?? '') : `${scan[1]} ${scan[2].replace(partitionName, '')}`);
      const actual = /actual rows=(\d+) loops=(\d+)/.exec(line);
      lastLoops = Number(actual?.[2] ?? 0);
      rowsRead += Number(actual?.[1] ?? 0) * lastLoops;
      continue;
    }
    const bitmap = /Bitmap Index Scan on (\S+)/.exec(line);
    if (bitmap?.[1] !== undefined) indexes.add(`Bitmap Index Scan ${bitmap[1].replace(partitionName, '')}`);
    const removed = /Rows Removed by (?:Filter|Index Recheck): (\d+)/.exec(line);
    if (removed?.[1] !== undefined) rowsRead += Number(removed[1]) * lastLoops;
    const subplans = /Subplans Removed: (\d+)/.exec(line);
    if (subplans?.[1] !== undefined) removedPending = Number(subplans[1]);
  }
  const top = /^Delete on /.test(lines[0] ?? '')
    ? /actual rows=(\d+)/.exec(lines.find((line) => /^\s*->/.test(line)) ?? '')
    : /actual rows=(\d+)/.exec(lines[0] ?? '');
  const shown = counts.records.planned > 0 ? counts.records : counts.record_ids;
  return {
    label,
    planningMs: time(/Planning Time: ([\d.]+) ms/),
    executionMs: time(/Execution Time: ([\d.]+) ms/),
    partitions: shown.planned === 0 ? '-' : `${shown.scanned}/${shown.planned}`,
    indexes: [...indexes],
    rowsRead,
    rowsReturned: Number(top?.[1] ?? 0),
    buffers: lines.find((line) => /^\s*Buffers:/.test(line))?.replace(/^\s*Buffers:\s*/, '') ?? '',
    locks,
  };
}

async function sample(sql: string): Promise<string> {
  const result = await client.query<{ v: string }>(sql);
  const value = result.rows[0]?.v;
  if (value === undefined) throw new Error(`no sample for ${sql}`);
  return value;
}

/** Explains every statement `action` sends, each under `label` plus its part name (by id: registry, record). */
async function explainEach(label: string, action: () => Promise<unknown>, parts: readonly string[]): Promise<void> {
  const statements = await captureAll(action);
  if (statements.length === 0 || statements.length > parts.length) {
    throw new Error(`${label}: expected at most ${parts.length} statements, saw ${statements.length}`);
  }
  for (const [i, statement] of statements.entries()) await explainRead(`${label}, ${parts[i]}`, statement);
}

/** A keyset position three days deep: page N of a long scroll costs what page 2 costs. */
async function deepPosition(repository: RecordStore): Promise<KeysetPosition> {
  const [deep] = await repository.list({ limit: 1, to: new Date(Date.now() - 3 * DAY_MS).toISOString() });
  if (deep === undefined) throw new Error('no keyset position found');
  return { timestamp: deep.timestamp, id: deep.id };
}

async function explainRepositoryQueries(repository: RecordStore): Promise<void> {
  const idOfVersion = (version: string) =>
    sample(`SELECT id::text AS v FROM records WHERE substr(id::text, 15, 1) = '${version}' OFFSET 4242 LIMIT 1`);
  const v7Id = await idOfVersion('7');
  const v4Id = await idOfVersion('4');
  // A one-hour window two days ago, as an RFC 3339 client would send it.
  const from = new Date(Math.floor((Date.now() - 2 * DAY_MS) / 3_600_000) * 3_600_000).toISOString();
  const to = new Date(Date.parse(from) + 3_600_000).toISOString();
  const after = await deepPosition(repository);

  console.log(`\n=== the repository's statements ===`);
  const run = async (label: string, action: () => Promise<unknown>, note?: string) =>
    explainRead(label, await capture(action), note);

  await explainEach('by id (uuidv7)', () => repository.findById(v7Id), BY_ID_PARTS);
  await explainEach('by id (uuid v4)', () => repository.findById(v4Id), BY_ID_PARTS);
  await explainEach('by id (absent)', () => repository.findById('00000000-0000-4000-8000-000000000000'), BY_ID_PARTS);
  await run('list, no filter', () => repository.list({ limit: LIMIT }));
  await run('list by source', () => repository.list({ source: COMMON_SOURCE, limit: LIMIT }));
  await run('list by type', () => repository.list({ type: RARE_TYPE, limit: LIMIT }));
  await run('list by source+type', () => repository.list({ source: COMMON_SOURCE, type: RARE_TYPE, limit: LIMIT }));
  await run(
    'list by source+type, no such pair',
    () => repository.list({ source: LONE_SOURCE, type: 'page.view', limit: LIMIT }),
    `${LONE_SOURCE} only writes job.finished`,
  );
  await run('list from/to', () => repository.list({ from, to, limit: LIMIT }), '1-hour window');
  await run('list by source from/to', () => repository.list({ source: COMMON_SOURCE, from, to, limit: LIMIT }));
  await run('list by source+type from/to', () =>
    repository.list({ source: COMMON_SOURCE, type: RARE_TYPE, from, to, limit: LIMIT }),
  );
  await run('list keyset', () => repository.list({ after, limit: LIMIT }), 'position 3 days deep');
  await run(
    'list by source keyset',
    () => repository.list({ source: COMMON_SOURCE, after, limit: LIMIT }),
    'position 3 days deep',
  );
  const keyset = await capture(() => repository.list({ source: COMMON_SOURCE, after, limit: LIMIT }));
  await explainRead(
    'SUGGESTED source keyset + timestamp <= bound',
    { sql: withKeysetBound(keyset.sql), bindings: keyset.bindings },
    'not what the repository runs today',
  );
}

/** The keyset predicate plus a redundant `timestamp <= position` that partition pruning understands. */
function withKeysetBound(sql: string): string {
  const bounded = sql.replace(
    /\(r\."timestamp", r\.id\) < \(\$(\d+)::timestamptz, \$(\d+)::uuid\)/,
    '$& and r."timestamp" <= $$$1::timestamptz',
  );
  if (bounded === sql) throw new Error('the keyset predicate changed; update withKeysetBound');
  return bounded;
}

/** A batch as the ingest service builds it: 70 % server-assigned UUIDv7, 30 % client-supplied v4. */
function batch(size: number, now: number): NewRecord[] {
  return Array.from({ length: size }, (_, i) => ({
    id: i % 10 < 7 ? uuidv7(now - i * 1_000) : crypto.randomUUID(),
    source: `source-${String(i % 20).padStart(2, '0')}`,
    type: 'page.view',
    timestamp: new Date(now - i * 1_000).toISOString(),
    payload: { seq: i, note: 'explain' },
  }));
}

/**
 * The insert statement (registry claim, records, outbox row) for a 100-row batch of new ids, then for the same
 * batch again (all duplicates: a retry). The statement and its bindings are captured from a repository bound to a
 * knex transaction that is rolled back; the EXPLAINs run in another transaction that is rolled back too.
 */
async function explainInsert(): Promise<void> {
  const trx = await db.transaction();
  let query: Captured;
  try {
    query = await capture(
      () => createRecordRepository({ db: trx, idempotencyTtlHours: 24 }).insert(batch(100, Date.now())),
      trx,
    );
  } finally {
    await trx.rollback();
  }
  for (const warm of [true, false]) {
    await client.query('BEGIN');
    try {
      const fresh = await explainText(query);
      const again = await explainText(query);
      if (!warm) {
        const locks = await heldLocks();
        report('insert 100 new records', 'rolled back', query, fresh, locks);
        report('insert the same 100 again', 'all duplicates; rolled back', query, again, locks);
      }
    } finally {
      await client.query('ROLLBACK');
    }
  }
}

/**
 * Runs the real maintainPartitions and records every statement it sends on its own connection; `hook` may run
 * checks around a statement. The connection is patched only while maintenance runs.
 */
async function recordMaintenance(
  plan: PartitionPlan,
  hook?: MaintenanceHook,
): Promise<{ report: MaintenanceReport; statements: Captured[] }> {
  const knexClient = db.client as { acquireConnection(): Promise<PgConnection> };
  const acquire = knexClient.acquireConnection;
  const patched: PgConnection[] = [];
  const statements: Captured[] = [];
  knexClient.acquireConnection = async () => {
    const connection = await acquire.call(knexClient);
    const original = connection.query;
    const send: Send = (sql, params = []) => original.call(connection, sql, params) as Promise<unknown>;
    connection.query = (...args: unknown[]) => {
      const [sql, params] = args;
      // knex itself sends query objects and callbacks; maintainPartitions sends (text, params) and awaits.
      if (typeof sql !== 'string' || args.some((arg) => typeof arg === 'function')) {
        return original.apply(connection, args);
      }
      const statement = { sql, bindings: Array.isArray(params) ? [...params] : [] };
      statements.push(statement);
      return hook === undefined ? send(sql, [...statement.bindings]) : hook(statement, send, connection.processID ?? 0);
    };
    patched.push(connection);
    return connection;
  };
  try {
    return { report: await maintainPartitions(db, plan), statements };
  } finally {
    knexClient.acquireConnection = acquire;
    for (const connection of patched) Reflect.deleteProperty(connection, 'query');
  }
}

/** The locks a backend holds or waits for (relations of this schema, advisory, virtualxid waits), grouped. */
async function locksOf(pid: number): Promise<string> {
  const result = await client.query<{ lock: string }>(
    `SELECT what || ' ' || mode || CASE WHEN count(*) > 1 THEN ' ×' || count(*) ELSE '' END AS lock
     FROM (
       SELECT CASE WHEN l.locktype = 'advisory' THEN 'advisory ' || l.objid
                   WHEN l.locktype <> 'relation' THEN l.locktype
                   -- created by the uncommitted statement, so not yet visible in pg_class
                   WHEN c.oid IS NULL THEN 'a new relation'
                   ELSE c.relname END AS what,
              l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END AS mode,
              l.granted
       FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
       WHERE l.pid = $1 AND l.locktype <> 'transactionid' AND NOT (l.locktype = 'virtualxid' AND l.granted)
         AND (c.oid IS NULL OR c.relnamespace = 'public'::regnamespace)
     ) AS locks
     GROUP BY what, mode, granted
     ORDER BY granted DESC, what`,
    [pid],
  );
  return result.rows.map((row) => row.lock).join(', ');
}

/** A list and a 100-row insert from another connection, each allowed to wait 1 s for a lock; rolled back. */
async function probeTraffic(): Promise<string> {
  const began = performance.now();
  const trx = await db.transaction();
  try {
    await trx.raw(`SET LOCAL lock_timeout = '1s'`);
    const repository = createRecordRepository({ db: trx, idempotencyTtlHours: 24 });
    const listed = await repository.list({ source: COMMON_SOURCE, limit: LIMIT });
    const written = await repository.insert(batch(100, Date.now()));
    const created = written.filter((w) => w.status === 'created').length;
    return `a list (${listed.length} rows) and an insert (${created} created) ran in ${(performance.now() - began).toFixed(1)} ms`;
  } catch (error) {
    return `traffic BLOCKED: ${String(error)}`;
  } finally {
    await trx.rollback();
  }
}

/**
 * One maintenance run that attaches a new partition (one more day ahead) and retires one (retention = PAST_DAYS
 * drops the oldest, empty, day and deletes no data), with checks around two of its statements:
 * - its first ATTACH is sent inside a transaction that stays open while pg_locks is read and traffic is probed;
 * - its DETACH … CONCURRENTLY is sent while a reader transaction is open on `records`, so that the detach waits
 *   for it: pg_locks is read and traffic is probed during that wait.
 * Then the registry retention delete that run sent is explained with a cut-off that expires the oldest day of
 * data, batch after batch, in a transaction that is rolled back. Finally the schema is put back as it was.
 */
async function explainMaintenance(): Promise<void> {
  console.log('\n=== partition maintenance (maintainPartitions) ===');
  let attachChecked = false;
  const hook: MaintenanceHook = async ({ sql, bindings }, send, pid) => {
    if (!attachChecked && /^ALTER TABLE records ATTACH PARTITION /.test(sql)) {
      attachChecked = true;
      await send('BEGIN');
      try {
        const result = await send(sql);
        maintenanceFindings.push(
          `${sql}\n    held until commit: ${await locksOf(pid)}\n    meanwhile ${await probeTraffic()}`,
        );
        await send('COMMIT');
        return result;
      } catch (error) {
        await send('ROLLBACK');
        throw error;
      }
    }
    if (/ DETACH PARTITION \S+ CONCURRENTLY$/.test(sql)) {
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM records LIMIT 1'); // a reader that began before the detach
      const began = performance.now();
      const detached = send(sql);
      const outcome = detached.then(
        () => 'done',
        (error: unknown) => String(error),
      );
      let waiting = false;
      for (let i = 0; i < 250 && !waiting; i++) {
        const w = await client.query(`SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted`, [pid]);
        waiting = w.rows.length > 0;
        if (!waiting) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const held = await locksOf(pid);
      const traffic = await probeTraffic();
      await client.query('COMMIT');
      const result = await outcome;
      maintenanceFindings.push(
        `${sql} (a reader transaction on records was open)\n    ${waiting ? 'while it waited' : 'it did NOT wait; afterwards'}: ${held}\n    meanwhile ${traffic}\n    the detach finished ${(performance.now() - began).toFixed(0)} ms after it began (${result}), after the reader committed`,
      );
      return detached;
    }
    return send(sql, [...bindings]);
  };
  const began = performance.now();
  const run = await recordMaintenance({ ...PLAN, aheadDays: AHEAD_DAYS + 1, retentionDays: PAST_DAYS }, hook);
  const elapsed = performance.now() - began;
  const { created, dropped } = run.report;
  for (const statement of run.statements) {
    console.log(`    ${statement.sql.replace(/\s+/g, ' ').trim()}  -- ${JSON.stringify(statement.bindings)}`);
  }
  console.log(`created ${created.join(', ')}; dropped ${dropped.join(', ')}; ${elapsed.toFixed(0)} ms with the checks`);
  for (const finding of maintenanceFindings) console.log(`\n${finding}`);
  if (created.length !== 1 || dropped.length !== 1 || !attachChecked) {
    throw new Error('maintenance did not attach and retire one partition each');
  }

  try {
    const registryDelete = run.statements.find((s) => /^DELETE FROM record_ids /.test(s.sql));
    if (registryDelete === undefined) throw new Error('maintainPartitions sent no registry delete');
    await explainRetention(registryDelete);
    // Each batch above hash-joins against a sequential scan of the whole registry; the same time bound on the
    // outer DELETE lets that side use the BRIN index too.
    const bounded = registryDelete.sql.replace(
      /^DELETE FROM record_ids WHERE id IN \(/,
      'DELETE FROM record_ids WHERE "timestamp" < $$1 AND id IN (',
    );
    if (bounded === registryDelete.sql) throw new Error('the registry delete changed; update the SUGGESTED variant');
    await explainRetention({ sql: bounded, bindings: registryDelete.bindings }, 'SUGGESTED ');
  } finally {
    // Put the schema back: drop the extra day ahead, let maintenance re-create the day it retired.
    for (const name of created) await client.query(`DROP TABLE IF EXISTS "${name}"`);
    const restored = await maintainPartitions(db, PLAN);
    console.log(`\nschema restored: re-created ${restored.created.join(', ')}, dropped ${created.join(', ')}`);
  }
}

/**
 * The registry delete exactly as maintainPartitions sends it, with a cut-off at the end of the oldest day of data,
 * explained batch after batch until a batch comes back short (as deleteInBatches loops), in one transaction that
 * is rolled back. The first and the last batch are reported; the rest are summed up.
 */
async function explainRetention(statement: Captured, prefix = ''): Promise<void> {
  const batchSize = Number(/LIMIT (\d+)/.exec(statement.sql)?.[1] ?? Number.NaN);
  if (!Number.isSafeInteger(batchSize) || statement.bindings.length !== 1) {
    throw new Error('the registry delete changed its shape; update explainRetention');
  }
  const cutoff = await sample(
    `SELECT to_char(date_trunc('day', min("timestamp"), 'UTC') + interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS v
     FROM record_ids`,
  );
  const expiring = Number(await sample(`SELECT count(*)::text AS v FROM record_ids WHERE "timestamp" < '${cutoff}'`));
  const query: Captured = { sql: statement.sql, bindings: [cutoff] };
  await client.query('BEGIN');
  try {
    await client.query('SAVEPOINT warm');
    await explainText(query);
    await client.query('ROLLBACK TO SAVEPOINT warm');
    const batches: string[][] = [];
    for (;;) {
      const lines = await explainText(query);
      batches.push(lines);
      if (planFacts('', lines, '').rowsReturned < batchSize || batches.length > expiring / batchSize + 2) break;
    }
    const locks = await heldLocks();
    const facts = batches.map((lines) => planFacts('', lines, ''));
    const sum = (pick: (f: PlanFacts) => number) => facts.reduce((total, f) => total + pick(f), 0);
    const hits = (f: PlanFacts) => Number(/hit=(\d+)/.exec(f.buffers)?.[1] ?? 0);
    const last = batches.length;
    const first = batches[0] ?? [];
    report(
      `${prefix}registry retention delete, batch 1/${last}`,
      `cut-off ${cutoff}; rolled back`,
      query,
      first,
      locks,
    );
    if (last > 1) {
      report(
        `${prefix}registry retention delete, batch ${last}/${last}`,
        'same transaction',
        query,
        batches[last - 1] ?? [],
        locks,
      );
    }
    const deleted = sum((f) => f.rowsReturned);
    console.log(`    -- ${last} batches deleted ${deleted} of ${expiring} expiring registry rows`);
    summary.push({
      label: `${prefix}registry retention delete, all ${last} batches`,
      planningMs: sum((f) => f.planningMs),
      executionMs: sum((f) => f.executionMs),
      partitions: '-',
      indexes: [...new Set(facts.flatMap((f) => f.indexes))],
      rowsRead: sum((f) => f.rowsRead),
      rowsReturned: deleted,
      buffers: `shared hit=${sum(hits)}`,
      locks,
    });
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Adds empty daily partitions back to STRESS_DAYS, re-explains what cannot prune at plan time, drops them again. */
async function explainWithManyPartitions(repository: RecordStore): Promise<void> {
  const began = performance.now();
  const added = await maintainPartitions(db, { ...PLAN, pastDays: stressDays });
  const seconds = ((performance.now() - began) / 1000).toFixed(1);
  try {
    await client.query('ANALYZE records');
    const parts = await sample(`SELECT count(*)::text AS v FROM pg_inherits WHERE inhparent = 'records'::regclass`);
    console.log(
      `\n=== ${parts} daily partitions: ${added.created.length} empty ones added by maintainPartitions in ${seconds} s, as ${stressDays} days of retention would keep ===`,
    );
    const id = await sample(`SELECT id::text AS v FROM records OFFSET 4242 LIMIT 1`);
    const from = new Date(Date.now() - 2 * DAY_MS).toISOString();
    const after = await deepPosition(repository);
    const run = async (label: string, action: () => Promise<unknown>) =>
      explainRead(`${parts} partitions: ${label}`, await capture(action));

    await explainEach(`${parts} partitions: by id`, () => repository.findById(id), BY_ID_PARTS);
    await run('list, no filter', () => repository.list({ limit: LIMIT }));
    await run('list by source', () => repository.list({ source: COMMON_SOURCE, limit: LIMIT }));
    await run('list by source+type, no such pair', () =>
      repository.list({ source: LONE_SOURCE, type: 'page.view', limit: LIMIT }),
    );
    await run('list by source from', () => repository.list({ source: COMMON_SOURCE, from, limit: LIMIT }));
    await run('list keyset', () => repository.list({ after, limit: LIMIT }));

    const keyset = await capture(() => repository.list({ after, limit: LIMIT }));
    await explainRead(`${parts} partitions: SUGGESTED keyset + timestamp <= bound`, {
      sql: withKeysetBound(keyset.sql),
      bindings: keyset.bindings,
    });
    // Named prepared statements do not rescue unbounded lists on PostgreSQL 15: a generic plan prunes at executor
    // start, but every partition (and index) of the cached plan is still locked on each execution.
    await explainGeneric(
      `${parts} partitions: list by source from, generic plan`,
      await capture(() => repository.list({ source: COMMON_SOURCE, from, limit: LIMIT })),
    );
  } finally {
    for (const name of added.created) await client.query(`DROP TABLE IF EXISTS "${name}"`);
  }
}

/** Explains `EXECUTE` of the statement prepared as a generic plan (what named prepared statements end up with). */
async function explainGeneric(label: string, query: Captured): Promise<void> {
  const args = query.bindings.map((v) => (typeof v === 'number' ? String(v) : client.escapeLiteral(String(v))));
  await client.query(`PREPARE generic_plan AS ${query.sql}`);
  await client.query('SET plan_cache_mode = force_generic_plan');
  try {
    await explainRead(
      label,
      { sql: `EXECUTE generic_plan(${args.join(', ')})`, bindings: [] },
      'PREPARE generic_plan AS <the statement above>; SET plan_cache_mode = force_generic_plan',
    );
  } finally {
    await client.query('RESET plan_cache_mode');
    await client.query('DEALLOCATE generic_plan');
  }
}

function printSummary(): void {
  console.log('\n=== summary (plan/exec ms; partitions scanned/planned; rows read by scans/returned) ===');
  for (const f of summary) {
    console.log(
      [
        f.label.padEnd(52),
        f.planningMs.toFixed(3).padStart(7),
        f.executionMs.toFixed(3).padStart(7),
        f.partitions.padStart(7),
        String(f.rowsRead).padStart(6),
        String(f.rowsReturned).padStart(5),
        ` ${f.indexes.join(', ') || '-'} | ${f.buffers} | locks ${f.locks}`,
      ].join(' '),
    );
  }
  console.log('\n=== maintenance locks ===');
  for (const finding of maintenanceFindings) console.log(finding);
}
