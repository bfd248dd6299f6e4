/**
 * Produces the EXPLAIN evidence of docs/storage.md: loads ROWS synthetic records into a scratch database, then
 * prints EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) for every statement the record repository runs.
 *
 *   node scripts/explain-plans.ts
 *
 * Environment:
 * - DATABASE_URL: default postgres://postgres@127.0.0.1:54329/data_service_explain. The name must contain "explain"
 *   or "bench": the script drops and recreates its public schema.
 * - ROWS: default 1000000, spread over the last ~7 days.
 * - STRESS_DAYS: default 365. Afterwards, empty daily partitions are added back to that many days (a year of
 *   retention), the statements that cannot prune at plan time are explained again, and the partitions are dropped.
 *   0 skips this.
 * - REUSE=1: keep the data of a previous run (same day) when it holds ROWS rows.
 *
 * The SQL is not copied: the script calls the real repository (createRecordRepository), captures the statement
 * and bindings knex sends, and explains exactly that text with those bindings. Each statement is explained once
 * unprinted first, so the figures are those of a warm connection (relation cache and buffers), as in production.
 */
import pg from 'pg';
import { createDatabase, createRecordRepository, databaseNameOf, maintainPartitions, migrateToLatest } from '#lib/db';
import { type KeysetPosition, type NewRecord, uuidv7 } from '#lib/records';

const DAY_MS = 86_400_000;
const CHUNK = 100_000;
/** Data covers [now - SPAN_DAYS, now - 1 min]: inside the accepted write window (RECORD_MAX_PAST_DAYS = 7). */
const SPAN_DAYS = 6.9;
const PAST_DAYS = 7;
const AHEAD_DAYS = 7;
const LIMIT = 101; // the query service asks for limit + 1 to learn whether a next page exists
const EXPLAIN = 'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ';
const COMMON_SOURCE = 'source-00'; // ≈ 22 % of rows
const RARE_TYPE = 'order.refunded'; // ≈ 4 % of rows
const LONE_SOURCE = 'batch-job'; // 1 % of rows, always of type job.finished

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:54329/data_service_explain';
const rows = nonNegativeInt('ROWS', 1_000_000);
const stressDays = nonNegativeInt('STRESS_DAYS', 365);
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

try {
  if (reuse && (await countRows()) === rows) {
    console.log(`reusing ${rows} loaded rows`);
  } else {
    await resetSchema();
    await load();
  }
  await reportSizes();
  await explainRepositoryQueries();
  if (stressDays > PAST_DAYS) await explainWithManyPartitions();
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
  const report = await maintainPartitions(db, {
    pastDays: PAST_DAYS,
    aheadDays: AHEAD_DAYS,
    retentionDays: 0,
    idempotencyTtlHours: 24,
  });
  console.log(`migrated; ${report.created.length} daily partitions created (timescale: ${report.timescale})`);
}

/**
 * One INSERT … SELECT per chunk; a data-modifying CTE claims the ids in record_ids in the same statement, as the
 * repository does. Timestamps rise with the row number (as live ingest does) with sub-row-slot jitter; 70 % of
 * ids are UUIDv7 derived from the timestamp (server-assigned), 30 % random v4 (client-supplied). Sources and types
 * are skewed: of the 99 % that are not batch-job rows, source-00 ≈ 22 % … source-19 ≈ 2.5 %, and page.view
 * ≈ 50 % … order.refunded ≈ 4 %.
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
       SELECT parent || ' index ' || regexp_replace(x.relname, '^' || parts.relname || '_', ''),
              sum(pg_relation_size(x.oid))
       FROM parts JOIN pg_index ix ON ix.indrelid = parts.oid JOIN pg_class x ON x.oid = ix.indexrelid
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

/** Runs `action` and returns the one statement it sent through `runner` (knex or a knex transaction). */
async function capture(
  action: () => Promise<unknown>,
  runner: { on: typeof db.on; off: typeof db.off } = db,
): Promise<Captured> {
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
  const statements = seen.filter((q) => !/^\s*(BEGIN|COMMIT|ROLLBACK)/i.test(q.sql));
  const [only] = statements;
  if (only === undefined || statements.length > 1) throw new Error(`expected one statement, saw ${seen.length}`);
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
 * Explains a read statement: once unprinted to warm the connection, then inside a transaction (rolled back) so
 * that the relation locks it takes can be counted, printed and summarised.
 */
async function explainRead(label: string, query: Captured, note = ''): Promise<void> {
  await explainText(query);
  await client.query('BEGIN');
  try {
    const lines = await explainText(query);
    report(label, note, query, lines, await heldLocks());
  } finally {
    await client.query('ROLLBACK');
  }
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
 * `records` when the plan has any, of `record_ids` otherwise; rows read count both.
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
  const top = /actual rows=(\d+)/.exec(lines[0] ?? '');
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

async function explainRepositoryQueries(): Promise<void> {
  const repository = createRecordRepository({ db, idempotencyTtlHours: 24 });
  const idOfVersion = (version: string) =>
    sample(`SELECT id::text AS v FROM records WHERE substr(id::text, 15, 1) = '${version}' OFFSET 4242 LIMIT 1`);
  const v7Id = await idOfVersion('7');
  const v4Id = await idOfVersion('4');
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  // A one-hour window two days ago, as an RFC 3339 client would send it.
  const from = iso(Math.floor((now - 2 * DAY_MS) / 3_600_000) * 3_600_000);
  const to = iso(Date.parse(from) + 3_600_000);
  // A keyset position three days deep: page N of a long scroll costs what page 2 costs.
  const [deep] = await repository.list({ limit: 1, to: iso(now - 3 * DAY_MS) });
  if (deep === undefined) throw new Error('no keyset position found');
  const after: KeysetPosition = { timestamp: deep.timestamp, id: deep.id };

  console.log(`\n=== the repository's statements ===`);
  const run = async (label: string, action: () => Promise<unknown>, note?: string) =>
    explainRead(label, await capture(action), note);

  await run('by id (uuidv7)', () => repository.findById(v7Id));
  await run('by id (uuid v4)', () => repository.findById(v4Id));
  await run('by id (absent)', () => repository.findById('00000000-0000-4000-8000-000000000000'));
  await explainTwoStepById('', v7Id, repository);
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
  await run('list keyset', () => repository.list({ after, limit: LIMIT }), 'position 3 days deep');
  await run(
    'list by source keyset',
    () => repository.list({ source: COMMON_SOURCE, after, limit: LIMIT }),
    'position 3 days deep',
  );
  const keyset = await capture(() => repository.list({ source: COMMON_SOURCE, after, limit: LIMIT }));
  await explainRead(
    'SUGGESTED keyset + timestamp <= bound',
    { sql: withKeysetBound(keyset.sql), bindings: keyset.bindings },
    'not what the repository runs today',
  );

  await explainInsert(now);
  await explainSuggestedIndexes(repository);
}

/**
 * Statements whose plans are not a bounded index range scan today, explained again with the index that would make
 * them one. Each index is created inside a transaction that is rolled back, so the schema is left as migrated.
 */
async function explainSuggestedIndexes(repository: ReturnType<typeof createRecordRepository>): Promise<void> {
  // The warm-up runs up to a savepoint that is rolled back, so that a DELETE still finds its rows afterwards.
  const explainInTransaction = async (label: string, query: Captured, note: string, ddl?: string) => {
    await client.query('BEGIN');
    try {
      if (ddl !== undefined) await client.query(ddl);
      await client.query('SAVEPOINT warm');
      await explainText(query);
      await client.query('ROLLBACK TO SAVEPOINT warm');
      const lines = await explainText(query);
      report(label, ddl === undefined ? note : `${note}; with ${ddl}`, query, lines, await heldLocks());
    } finally {
      await client.query('ROLLBACK');
    }
  };
  const composite =
    'CREATE INDEX records_source_type_timestamp_id ON records (source, type, "timestamp" DESC, id DESC)';
  const noPair = await capture(() => repository.list({ source: LONE_SOURCE, type: 'page.view', limit: LIMIT }));
  await explainInTransaction('SUGGESTED list by source+type, no such pair', noPair, 'index rolled back', composite);
  const pair = await capture(() => repository.list({ source: COMMON_SOURCE, type: RARE_TYPE, limit: LIMIT }));
  await explainInTransaction('SUGGESTED list by source+type', pair, 'index rolled back', composite);

  // Retention: maintainPartitions drops a day's partitions, then deletes that day from the registry with this
  // statement (copied from lib/db/partitions.ts: it only runs when partitions are dropped). Cut-off: the end of
  // the oldest day that holds data.
  const cutoff = await sample(
    `SELECT (date_trunc('day', min("timestamp"), 'UTC') + interval '1 day')::text AS v FROM record_ids`,
  );
  const retention: Captured = { sql: 'DELETE FROM record_ids WHERE "timestamp" < $1', bindings: [cutoff] };
  await explainInTransaction('registry retention delete', retention, 'rolled back');
  await explainInTransaction(
    'SUGGESTED registry retention delete',
    retention,
    'rolled back',
    'CREATE INDEX record_ids_timestamp ON record_ids ("timestamp")',
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
 * The insert CTE for a 100-row batch of new ids, then for the same batch again (all duplicates: a retry). The
 * statement is captured from a repository bound to a knex transaction that is rolled back; the EXPLAINs run in
 * another transaction that is rolled back too.
 */
async function explainInsert(now: number): Promise<void> {
  const trx = await db.transaction();
  let statement: Captured;
  try {
    statement = await capture(
      () => createRecordRepository({ db: trx, idempotencyTtlHours: 24 }).insert(batch(100, now)),
      trx,
    );
  } finally {
    await trx.rollback();
  }
  const records = batch(100, now);
  const bindings = [
    records.map((r) => r.id),
    records.map((r) => r.source),
    records.map((r) => r.type),
    records.map((r) => r.timestamp),
    records.map((r) => JSON.stringify(r.payload)),
  ];
  if (statement.bindings.length !== bindings.length) throw new Error('the insert statement changed its parameters');
  const query = { sql: statement.sql, bindings };
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

/** Adds empty daily partitions back to STRESS_DAYS, re-explains what cannot prune at plan time, drops them again. */
async function explainWithManyPartitions(): Promise<void> {
  const added = await maintainPartitions(db, {
    pastDays: stressDays,
    aheadDays: AHEAD_DAYS,
    retentionDays: 0,
    idempotencyTtlHours: 24,
  });
  try {
    await client.query('ANALYZE records');
    const parts = await sample(`SELECT count(*)::text AS v FROM pg_inherits WHERE inhparent = 'records'::regclass`);
    console.log(
      `\n=== ${parts} daily partitions: ${added.created.length} empty ones added, as ${stressDays} days of retention would keep ===`,
    );
    const repository = createRecordRepository({ db, idempotencyTtlHours: 24 });
    const id = await sample(`SELECT id::text AS v FROM records OFFSET 4242 LIMIT 1`);
    const from = new Date(Date.now() - 2 * DAY_MS).toISOString();
    const [deep] = await repository.list({ limit: 1, to: new Date(Date.now() - 3 * DAY_MS).toISOString() });
    if (deep === undefined) throw new Error('no keyset position found');
    const after: KeysetPosition = { timestamp: deep.timestamp, id: deep.id };
    const run = async (label: string, action: () => Promise<unknown>) =>
      explainRead(`${parts} partitions: ${label}`, await capture(action));

    await run('by id', () => repository.findById(id));
    await run('list, no filter', () => repository.list({ limit: LIMIT }));
    await run('list by source', () => repository.list({ source: COMMON_SOURCE, limit: LIMIT }));
    await run('list by source from', () => repository.list({ source: COMMON_SOURCE, from, limit: LIMIT }));
    await run('list keyset', () => repository.list({ after, limit: LIMIT }));

    const keyset = await capture(() => repository.list({ after, limit: LIMIT }));
    await explainRead(`${parts} partitions: SUGGESTED keyset + timestamp <= bound`, {
      sql: withKeysetBound(keyset.sql),
      bindings: keyset.bindings,
    });
    // Named prepared statements do not rescue this on PostgreSQL 15: a generic plan prunes at executor start,
    // but every partition (and index) of the cached plan is still locked on each execution.
    await explainGeneric(`${parts} partitions: by id, generic plan`, await capture(() => repository.findById(id)));
    await explainGeneric(
      `${parts} partitions: list by source from, generic plan`,
      await capture(() => repository.list({ source: COMMON_SOURCE, from, limit: LIMIT })),
    );
    await explainTwoStepById(`${parts} partitions: `, id, repository);
  } finally {
    for (const name of added.created) await client.query(`DROP TABLE IF EXISTS "${name}"`);
  }
}

/**
 * A two-step by-id lookup: the registry first, then the record with its timestamp as a plain parameter, so that
 * both statements prune to one partition at plan time. Not what the repository runs today.
 */
async function explainTwoStepById(
  prefix: string,
  id: string,
  repository: ReturnType<typeof createRecordRepository>,
): Promise<void> {
  const byId = await capture(() => repository.findById(id));
  const lookup = /\((SELECT "timestamp" FROM record_ids WHERE id = )\$2\)/.exec(byId.sql);
  if (lookup?.[1] === undefined) throw new Error('the by-id statement changed; update explainTwoStepById');
  await explainRead(`${prefix}SUGGESTED by id, step 1: registry`, { sql: `${lookup[1]}$1`, bindings: [id] });
  const ts = await sample(`SELECT "timestamp"::text AS v FROM record_ids WHERE id = ${client.escapeLiteral(id)}`);
  await explainRead(`${prefix}SUGGESTED by id, step 2: record`, {
    sql: byId.sql.replace(lookup[0], '$2::timestamptz'),
    bindings: [id, ts],
  });
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
        f.label.padEnd(46),
        f.planningMs.toFixed(3).padStart(7),
        f.executionMs.toFixed(3).padStart(7),
        f.partitions.padStart(7),
        String(f.rowsRead).padStart(6),
        String(f.rowsReturned).padStart(4),
        ` ${f.indexes.join(', ') || '-'} | ${f.buffers} | locks ${f.locks}`,
      ].join(' '),
    );
  }
}
