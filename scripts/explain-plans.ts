/**
 * Produces the EXPLAIN evidence of docs/storage.md: loads ROWS synthetic records into a scratch database, then
 * prints EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) for every statement the record repository runs.
 *
 *   node scripts/explain-plans.ts
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:54329/data_service_explain; the database name
 * must contain "explain" or "bench", because the script drops and recreates the service's tables), ROWS (default
 * 1000000), STRESS_DAYS (default 365: afterwards, empty daily partitions are added back to that many days and the
 * unbounded queries are re-planned; 0 skips this), REUSE=1 (keep the loaded data when it already holds ROWS rows).
 *
 * The SQL is not copied: the script calls the real repository (createRecordRepository) and captures the statement
 * and bindings knex sends, then explains exactly that text.
 */
import pg from 'pg';
import { createDatabase, createRecordRepository, databaseNameOf, maintainPartitions, migrateToLatest } from '#lib/db';
import type { NewRecord } from '#lib/records';

const DAY_MS = 86_400_000;
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:54329/data_service_explain';
const rows = positiveInt('ROWS', 1_000_000);
const stressDays = positiveInt('STRESS_DAYS', 365);
const reuse = process.env.REUSE === '1';
const CHUNK = 100_000;
/** Data covers [now - SPAN_DAYS, now - 1 min]: inside the accepted write window (RECORD_MAX_PAST_DAYS = 7). */
const SPAN_DAYS = 6.9;
const PAST_DAYS = 7;
const AHEAD_DAYS = 7;

const dbName = databaseNameOf(url);
if (!/explain|bench/.test(dbName)) {
  console.error(`refusing to run against "${dbName}": the database name must contain "explain" or "bench"`);
  process.exit(2);
}

interface Captured {
  readonly sql: string;
  readonly bindings: unknown[];
}

interface PlanFacts {
  readonly label: string;
  readonly planningMs: number;
  readonly executionMs: number;
  readonly scanned: number;
  readonly pruned: number;
  readonly indexes: string[];
  readonly rowsRead: number;
  readonly rowsReturned: number;
  readonly buffers: string;
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
  const loaded = reuse ? await countRows() : -1;
  if (loaded === rows) {
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

function positiveInt(name: string, fallback: number): number {
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
  await client.query(
    'DROP TABLE IF EXISTS idempotency_keys, records, record_ids, knex_migrations, knex_migrations_lock CASCADE',
  );
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
 * repository does. Timestamps rise with the row number (as live ingest does) with microsecond jitter; 70 % of ids
 * are UUIDv7 derived from the timestamp (server-assigned), 30 % random v4 (client-supplied). Sources and types are
 * skewed: source-00 ≈ 22 %, source-19 ≈ 2.5 %; page.view ≈ 50 %, the last type ≈ 4 %.
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
                'source-' || lpad(floor(20 * r1 * r1)::int::text, 2, '0') AS source,
                (ARRAY['page.view', 'page.click', 'form.submit', 'cart.add', 'cart.remove', 'order.created',
                       'order.paid', 'order.refunded'])[1 + floor(8 * r2 * r2 * r2)::int] AS type,
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
       GROUP BY parent, 3
     )
     SELECT name, pg_size_pretty(bytes) AS bytes, round(bytes / $1::numeric, 1) AS per_row FROM sizes ORDER BY name`,
    [rows],
  );
  const total = await client.query<{ n: string; parts: string }>(
    `SELECT (SELECT count(*) FROM records) AS n,
            (SELECT count(*) FROM pg_inherits WHERE inhparent = 'records'::regclass) AS parts`,
  );
  console.log(`\n=== ${total.rows[0]?.n} rows in ${total.rows[0]?.parts} daily partitions (PostgreSQL ${
    (await client.query<{ v: string }>('SHOW server_version')).rows[0]?.v
  }, measured ${new Date().toISOString()}) ===`);
  for (const row of result.rows) console.log(`${row.name.padEnd(52)} ${row.bytes.padStart(8)}  ${row.per_row} B/row`);
}

/** Runs `action` and returns the single statement it sent through `knex`. */
async function capture(action: () => Promise<unknown>): Promise<Captured> {
  const seen: Captured[] = [];
  const listener = (query: { sql: string; bindings?: unknown[] }) => {
    seen.push({ sql: query.sql, bindings: [...(query.bindings ?? [])] });
  };
  db.on('query', listener);
  try {
    await action();
  } finally {
    db.off('query', listener);
  }
  const [only, ...rest] = seen.filter((q) => !/^\s*(BEGIN|COMMIT|ROLLBACK)/i.test(q.sql));
  if (only === undefined || rest.length > 0) throw new Error(`expected one statement, saw ${seen.length}`);
  return only;
}

const EXPLAIN = 'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ';

async function explain(label: string, query: Captured, note = ''): Promise<PlanFacts> {
  const result = await client.query<{ 'QUERY PLAN': string }>(EXPLAIN + query.sql, query.bindings);
  const lines = result.rows.map((row) => row['QUERY PLAN']);
  console.log(`\n--- ${label}${note ? ` (${note})` : ''}`);
  console.log(
    query.sql
      .trim()
      .split('\n')
      .map((line) => `    ${line.trim()}`)
      .join('\n'),
  );
  console.log(
    `    -- bindings: ${JSON.stringify(query.bindings, (_, v) => (Array.isArray(v) && v.length > 3 ? `[${v.length} values]` : v))}`,
  );
  for (const line of lines) console.log(line);
  const facts = planFacts(label, lines);
  summary.push(facts);
  return facts;
}

/** Partitions scanned or skipped, indexes used and rows read, parsed from the text plan. */
function planFacts(label: string, lines: string[]): PlanFacts {
  const number = (re: RegExp): number => {
    for (const line of lines) {
      const match = re.exec(line);
      if (match?.[1] !== undefined) return Number(match[1]);
    }
    return Number.NaN;
  };
  let scanned = 0;
  let pruned = 0;
  let rowsRead = 0;
  const indexes = new Set<string>();
  let lastScanLoops = 0;
  for (const line of lines) {
    const scan = /(Index Only Scan|Index Scan|Bitmap Heap Scan|Seq Scan)(?: Backward)?(?: using (\S+))? on (records_\d{8})/.exec(
      line,
    );
    if (scan) {
      if (line.includes('never executed')) {
        pruned++;
        lastScanLoops = 0;
        continue;
      }
      scanned++;
      if (scan[2] !== undefined) indexes.add(`${scan[1]} ${scan[2].replace(/^records_\d{8}_/, '')}`);
      else indexes.add(scan[1] ?? '');
      const actual = /actual rows=(\d+) loops=(\d+)/.exec(line);
      lastScanLoops = Number(actual?.[2] ?? 0);
      rowsRead += Number(actual?.[1] ?? 0) * lastScanLoops;
      continue;
    }
    const removed = /Rows Removed by (?:Filter|Index Recheck): (\d+)/.exec(line);
    if (removed?.[1] !== undefined && lastScanLoops > 0) rowsRead += Number(removed[1]) * lastScanLoops;
    const subplans = /Subplans Removed: (\d+)/.exec(line);
    if (subplans?.[1] !== undefined) pruned += Number(subplans[1]);
  }
  const top = /actual rows=(\d+)/.exec(lines[0] ?? '');
  const buffers = lines.find((line) => /^\s*Buffers:/.test(line))?.replace(/^\s*Buffers:\s*/, '') ?? '';
  return {
    label,
    planningMs: number(/Planning Time: ([\d.]+) ms/),
    executionMs: number(/Execution Time: ([\d.]+) ms/),
    scanned,
    pruned,
    indexes: [...indexes],
    rowsRead,
    rowsReturned: Number(top?.[1] ?? 0),
    buffers,
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
  const limit = 101; // the query service asks for limit + 1 to learn whether a next page exists
  const v7Id = await sample(`SELECT id::text AS v FROM records WHERE substr(id::text, 15, 1) = '7' OFFSET 4242 LIMIT 1`);
  const v4Id = await sample(`SELECT id::text AS v FROM records WHERE substr(id::text, 15, 1) = '4' OFFSET 4242 LIMIT 1`);
  const source = await sample(`SELECT source AS v FROM records GROUP BY source ORDER BY count(*) DESC LIMIT 1`);
  const rareType = await sample(`SELECT type AS v FROM records GROUP BY type ORDER BY count(*) LIMIT 1`);
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  // A one-hour window two days ago, as an RFC 3339 client would send it.
  const from = iso(Math.floor((now - 2 * DAY_MS) / 3_600_000) * 3_600_000);
  const to = iso(Date.parse(from) + 3_600_000);
  // A keyset position three days deep: page N of a long scroll costs the same as page 2.
  const deep = await repository.list({ source, limit: 1, to: iso(now - 3 * DAY_MS) });
  const position = deep[0];
  if (position === undefined) throw new Error('no keyset position found');
  const after = { timestamp: position.timestamp, id: position.id };

  console.log(`\n=== repository statements (warm cache: each runs once through the repository first) ===`);
  const run = async (label: string, action: () => Promise<unknown>, note?: string) =>
    explain(label, await capture(action), note);

  await run('by id (uuidv7)', () => repository.findById(v7Id));
  await run('by id (uuid v4)', () => repository.findById(v4Id));
  await run('by id (absent)', () => repository.findById('00000000-0000-4000-8000-000000000000'));
  await run('list, no filter', () => repository.list({ limit }));
  await run('list by source', () => repository.list({ source, limit }));
  await run('list by type', () => repository.list({ type: rareType, limit }), 'rarest type');
  await run('list by source+type', () => repository.list({ source, type: rareType, limit }), 'common source, rarest type');
  await run('list from/to', () => repository.list({ from, to, limit }), '1-hour window');
  await run('list by source from/to', () => repository.list({ source, from, to, limit }));
  await run('list keyset', () => repository.list({ after, limit }), 'position 3 days deep');
  await run('list by source keyset', () => repository.list({ source, after, limit }), 'position 3 days deep');
  const keyset = await capture(() => repository.list({ source, after, limit }));
  await explain(
    'suggested: keyset + redundant timestamp bound',
    {
      sql: keyset.sql.replace(
        /\(r\."timestamp", r\.id\) < \(\$(\d+)::timestamptz, \$(\d+)::uuid\)/,
        '$& and r."timestamp" <= $$$1::timestamptz',
      ),
      bindings: keyset.bindings,
    },
    'not what the repository runs today',
  );

  await explainInsert(repository, now);
}

function batch(size: number, now: number, seed: string): NewRecord[] {
  return Array.from({ length: size }, (_, i) => ({
    id: i % 10 < 7 ? syntheticV7(now - i * 1_000, seed, i) : crypto.randomUUID(),
    source: `source-${String(i % 20).padStart(2, '0')}`,
    type: 'page.view',
    timestamp: new Date(now - i * 1_000).toISOString(),
    payload: { seq: i, seed },
  }));
}

function syntheticV7(ms: number, seed: string, i: number): string {
  const hex = ms.toString(16).padStart(12, '0') + crypto.randomUUID().replaceAll('-', '').slice(12);
  void seed;
  void i;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${hex.slice(13, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The insert CTE for a 100-row batch of new ids and for the same batch again (all duplicates); rolled back. */
async function explainInsert(repository: ReturnType<typeof createRecordRepository>, now: number): Promise<void> {
  const first = batch(100, now, 'capture');
  const trx = await db.transaction();
  let statement: Captured;
  try {
    const seen: Captured[] = [];
    const listener = (query: { sql: string; bindings?: unknown[] }) => {
      seen.push({ sql: query.sql, bindings: [...(query.bindings ?? [])] });
    };
    trx.on('query', listener);
    db.on('query', listener);
    await createRecordRepository({ db: trx, idempotencyTtlHours: 24 }).insert(first);
    trx.off('query', listener);
    db.off('query', listener);
    const inserts = seen.filter((q) => /INSERT INTO records/.test(q.sql));
    const [only] = inserts;
    if (only === undefined) throw new Error('insert statement not captured');
    statement = only;
  } finally {
    await trx.rollback();
  }
  void repository;
  const fresh = batch(100, now, 'explain');
  const bindings = [
    fresh.map((r) => r.id),
    fresh.map((r) => r.source),
    fresh.map((r) => r.type),
    fresh.map((r) => r.timestamp),
    fresh.map((r) => JSON.stringify(r.payload)),
  ];
  if (statement.bindings.length !== bindings.length) throw new Error('the insert statement changed its parameters');
  await client.query('BEGIN');
  try {
    await explain('insert 100 new records', { sql: statement.sql, bindings }, 'rolled back');
    await explain('insert the same 100 again', { sql: statement.sql, bindings }, 'all duplicates; rolled back');
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Adds empty daily partitions back to STRESS_DAYS and re-plans the statements that cannot prune at plan time. */
async function explainWithManyPartitions(): Promise<void> {
  const report = await maintainPartitions(db, {
    pastDays: stressDays,
    aheadDays: AHEAD_DAYS,
    retentionDays: 0,
    idempotencyTtlHours: 24,
  });
  await client.query('VACUUM (ANALYZE) records');
  const parts = await sample(`SELECT count(*)::text AS v FROM pg_inherits WHERE inhparent = 'records'::regclass`);
  console.log(
    `\n=== with ${parts} daily partitions (${report.created.length} empty ones added: ${stressDays} days of retention) ===`,
  );
  const repository = createRecordRepository({ db, idempotencyTtlHours: 24 });
  const id = await sample(`SELECT id::text AS v FROM records OFFSET 4242 LIMIT 1`);
  const source = await sample(`SELECT source AS v FROM records GROUP BY source ORDER BY count(*) DESC LIMIT 1`);
  const from = new Date(Date.now() - 2 * DAY_MS).toISOString();
  const run = async (label: string, action: () => Promise<unknown>) =>
    explain(`${parts} partitions: ${label}`, await capture(action));
  await run('by id', () => repository.findById(id));
  await run('list, no filter', () => repository.list({ limit: 101 }));
  await run('list by source', () => repository.list({ source, limit: 101 }));
  await run('list by source from', () => repository.list({ source, from, limit: 101 }));
  // What a two-step lookup (registry first, then the record with a constant timestamp) would plan instead.
  const ts = await sample(`SELECT "timestamp"::text AS v FROM record_ids WHERE id = '${id}'`);
  const byId = await capture(() => repository.findById(id));
  await explain(`${parts} partitions: suggested by id, timestamp as a parameter`, {
    sql: byId.sql.replace(/\(select "timestamp" from record_ids where id = \$2\)/i, '$$2::timestamptz'),
    bindings: [id, ts],
  });
}

function printSummary(): void {
  console.log('\n=== summary ===');
  console.log(
    `${'statement'.padEnd(56)} ${'plan ms'.padStart(8)} ${'exec ms'.padStart(8)} ${'parts'.padStart(9)} ${'read'.padStart(7)} ${'ret'.padStart(5)}  index / buffers`,
  );
  for (const f of summary) {
    console.log(
      `${f.label.padEnd(56)} ${f.planningMs.toFixed(3).padStart(8)} ${f.executionMs.toFixed(3).padStart(8)} ${`${f.scanned}/${f.scanned + f.pruned}`.padStart(9)} ${String(f.rowsRead).padStart(7)} ${String(f.rowsReturned).padStart(5)}  ${f.indexes.join(', ')} | ${f.buffers}`,
    );
  }
}
