/**
 * `npm run bench:growth`: latency as the table grows (issue 5, item 5). Loads synthetic records fast into the
 * scratch database GROWTH_DATABASE (data_service_growth; any name without "bench" or "growth" is refused), then
 * measures, through the real bundles, the p99 of `GET /data/{id}`, a list page `GET /data?source=…&limit=100` and
 * `POST /data` (one record) with short fixed-rate vegeta runs, first at 1M rows and then at ROWS (10M), and
 * reports every figure as a ratio to the 1M one.
 *
 * Loading: one `INSERT … SELECT … FROM generate_series` per chunk of 500k rows with synchronous_commit off,
 * claiming each id in `record_ids` in the same statement as the repository does (as scripts/explain-plans.ts does),
 * timestamps spread over the last 6.9 days (inside the accepted write window), 20 skewed sources; then
 * VACUUM (ANALYZE). The path to 100M+: `ROWS=100000000 npm run bench:growth` (docs/growth.md: time and disk).
 *
 * So that the reads measure PostgreSQL and not a cache, the query bundle runs without Redis and with
 * QUERY_RESPONSE_CACHE_ENTRIES=0; ingest runs without Redis (nothing to invalidate) and with Kafka (the relay).
 * Settings: ROWS (10000000), GROWTH_BASE_ROWS (1000000), GROWTH_READ_RATE (300), GROWTH_LIST_RATE (100),
 * GROWTH_WRITE_RATE (300), GROWTH_SECONDS (8), BENCH_DEADLINE_SECONDS (1500). JSON in bench-results/growth.json.
 */
import { join } from 'node:path';
import pg from 'pg';
import { attack, formatTable, intEnv, recordBody, recordId, runBench, type Target, writeTargets } from './harness.ts';
import { assertScratchDatabase } from './pg.ts';
import { say } from './proc.ts';
import { round } from './report.ts';

const DAY_MS = 86_400_000;
const SPAN_DAYS = 6.9;
const CHUNK = 500_000;
const SOURCES = 20;

const settings = {
  rows: intEnv('ROWS', 10_000_000),
  baseRows: intEnv('GROWTH_BASE_ROWS', 1_000_000),
  readRate: intEnv('GROWTH_READ_RATE', 300),
  listRate: intEnv('GROWTH_LIST_RATE', 100),
  writeRate: intEnv('GROWTH_WRITE_RATE', 300),
  seconds: intEnv('GROWTH_SECONDS', 8),
};
const database = process.env.GROWTH_DATABASE || 'data_service_growth';
try {
  assertScratchDatabase(database);
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}
const sizes = [...new Set([Math.min(settings.baseRows, settings.rows), settings.rows])];

/** Rows lo…hi (1-based) of a load of `total` rows spread over [start, end]. */
async function loadChunk(client: pg.Client, lo: number, hi: number, total: number, start: number, end: number) {
  await client.query(
    `WITH s AS (
       SELECT g, to_timestamp(($3::float8 + ($4::float8 - $3::float8) * (g - 1 + random()) / $5::float8) / 1000) AS ts,
              random() AS r1, random() AS r2
       FROM generate_series($1::int, $2::int) AS g
     ), gen AS MATERIALIZED (
       SELECT gen_random_uuid() AS id,
              'source-' || lpad(floor(${SOURCES} * r1 * r1)::int::text, 2, '0') AS source,
              (ARRAY['page.view', 'page.click', 'form.submit', 'cart.add', 'order.created'])[1 + floor(5 * r2)::int] AS type,
              ts,
              jsonb_build_object('seq', g, 'unit', 'C', 'value', round((r1 * 1000)::numeric, 2)) AS payload
       FROM s
     ), claimed AS (
       INSERT INTO record_ids (id, "timestamp") SELECT id, ts FROM gen
     )
     INSERT INTO records (id, source, type, "timestamp", payload, received_at)
     SELECT id, source, type, ts, payload, ts + interval '40 milliseconds' FROM gen`,
    [lo, hi, start, end, total],
  );
}

await runBench({
  name: 'growth',
  database,
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 1_500),
  async body(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl, application_name: 'bench-growth' });
    await client.connect();
    const end = Date.now() - 60_000;
    const start = end - SPAN_DAYS * DAY_MS;
    const total = settings.rows;
    const results: Record<string, unknown>[] = [];
    let loaded = 0;
    let loadSeconds = 0;
    try {
      for (const size of sizes) {
        const began = performance.now();
        await client.query('SET synchronous_commit = off');
        // Rows are numbered against the final total, so each size is a prefix of one time-ordered load.
        for (let lo = loaded + 1; lo <= size; lo += CHUNK) {
          const hi = Math.min(size, lo + CHUNK - 1);
          await loadChunk(client, lo, hi, total, start, end);
          say(`loaded ${hi} / ${size} rows (${((performance.now() - began) / 1000).toFixed(0)} s)`);
        }
        await client.query('RESET synchronous_commit');
        await client.query('VACUUM (ANALYZE) records');
        await client.query('VACUUM (ANALYZE) record_ids');
        await client.query('CHECKPOINT');
        loadSeconds += (performance.now() - began) / 1000;
        loaded = size;
        const bytes = Number(
          (await client.query<{ b: string }>('SELECT pg_database_size(current_database()) AS b')).rows[0]?.b ?? 0,
        );
        const sample = await client.query<{ id: string }>(
          `SELECT id FROM records TABLESAMPLE SYSTEM (${Math.min(100, (5_000 / size) * 100 * 20)}) LIMIT 20000`,
        );
        const ids = sample.rows.map((r) => r.id).sort(() => Math.random() - 0.5);
        say(`${size} rows: loaded in ${loadSeconds.toFixed(0)} s so far, database ${(bytes / 2 ** 30).toFixed(2)} GiB`);

        const query = await ctx.startBundle(
          'query',
          ctx.functionEnv({ REDIS_URL: undefined, QUERY_RESPONSE_CACHE_ENTRIES: '0' }),
        );
        const ingest = await ctx.startBundle('ingest', ctx.functionEnv({ REDIS_URL: undefined }));
        let seq = 0;
        let pick = 0;
        const cases: Array<{ name: string; rate: number; make: () => Target; pid: number }> = [
          {
            name: 'get-by-id',
            rate: settings.readRate,
            make: () => ({ method: 'GET', url: `http://127.0.0.1:${query.port}/data/${ids[pick++ % ids.length]}` }),
            pid: query.process.pid,
          },
          {
            name: 'list-page',
            rate: settings.listRate,
            make: () => ({
              method: 'GET',
              url: `http://127.0.0.1:${query.port}/data?source=source-${String(seq++ % SOURCES).padStart(2, '0')}&limit=100`,
            }),
            pid: query.process.pid,
          },
          {
            name: 'post-one',
            rate: settings.writeRate,
            make: () => ({
              method: 'POST',
              url: `http://127.0.0.1:${ingest.port}/data`,
              body: recordBody(recordId(), 'bench-growth', seq++),
            }),
            pid: ingest.process.pid,
          },
        ];
        for (const c of cases) {
          const warm = join(ctx.tmp, `${c.name}-warm.jsonl`);
          const file = join(ctx.tmp, `${c.name}.jsonl`);
          writeTargets(warm, Array.from({ length: c.rate * 2 }, c.make));
          writeTargets(file, Array.from({ length: c.rate * settings.seconds }, c.make));
          await attack({ targets: warm, rate: c.rate, seconds: 2, dir: ctx.tmp, name: `${c.name}-warm` });
          const o = await attack({
            targets: file,
            rate: c.rate,
            seconds: settings.seconds,
            dir: ctx.tmp,
            name: c.name,
            watch: { server: c.pid },
          });
          say(`  ${size} rows, ${c.name}: p50 ${o.p50Ms} ms, p99 ${o.p99Ms} ms, errors ${o.errorRatio}`);
          results.push({
            rows: size,
            case: c.name,
            rate: c.rate,
            throughput: o.throughput,
            p50_ms: o.p50Ms,
            p99_ms: o.p99Ms,
            error_ratio: o.errorRatio,
            server_cpu_us_per_request:
              o.requests > 0 ? round(((o.processCores.server ?? 0) * o.seconds * 1e6) / o.requests, 0) : null,
            postgres_cores: o.postgresCores,
            database_gib: round(bytes / 2 ** 30, 3),
            load_seconds_cumulative: round(loadSeconds, 1),
          });
        }
        await query.process.stop(15_000);
        await ingest.process.stop(15_000);
      }
    } finally {
      await client.end();
    }
    const base = (name: string) => results.find((r) => r.rows === sizes[0] && r.case === name);
    for (const r of results) {
      const b = base(String(r.case));
      r.p50_ratio = b ? round(Number(r.p50_ms) / Number(b.p50_ms), 3) : null;
      r.p99_ratio = b ? round(Number(r.p99_ms) / Number(b.p99_ms), 3) : null;
      r.cpu_ratio = b?.server_cpu_us_per_request
        ? round(Number(r.server_cpu_us_per_request) / Number(b.server_cpu_us_per_request), 3)
        : null;
    }
    process.stdout.write(
      `\n${formatTable(
        [
          'rows',
          'case',
          'rate',
          'p50_ms',
          'p99_ms',
          'p50_ratio',
          'p99_ratio',
          'srv_us/req',
          'cpu_ratio',
          'errors',
          'db_GiB',
        ],
        results.map((r) =>
          [
            r.rows,
            r.case,
            r.rate,
            r.p50_ms,
            r.p99_ms,
            r.p50_ratio,
            r.p99_ratio,
            r.server_cpu_us_per_request,
            r.cpu_ratio,
            r.error_ratio,
            r.database_gib,
          ].map((v) => (v === null || v === undefined ? '-' : String(v))),
        ),
      )}\n\nvegeta fixed rate, 2 s warm-up + ${settings.seconds} s per case; ratios to ${sizes[0]} rows; ` +
        `load + VACUUM ANALYZE ${loadSeconds.toFixed(0)} s for ${loaded} rows.\n`,
    );
    return { settings, database, sizes, load_seconds: round(loadSeconds, 1), results };
  },
});
