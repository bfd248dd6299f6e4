/**
 * `npm run bench:growth`: latency as the table grows. Loads synthetic records (scripts/bench/synthetic-records.ts)
 * into the scratch database GROWTH_DATABASE (data_service_growth; a name without "bench" or "growth" is refused),
 * spread over the last 6.9 days (inside the accepted write window), then measures through the bundles the p99 of
 * `GET /data/{id}`, a list page `GET /data?source=…&limit=100` and `POST /data` with short fixed-rate vegeta runs,
 * first at GROWTH_BASE_ROWS (1M) and then at ROWS (10M), each figure also as a ratio to the first size. The path to
 * 100M+: `ROWS=100000000 npm run bench:growth` (docs/growth.md: time and disk).
 *
 * So that the reads measure PostgreSQL and not a cache, query runs without Redis and with
 * QUERY_RESPONSE_CACHE_ENTRIES=0; ingest without Redis (nothing to invalidate), with Kafka (the relay).
 * Rates: GROWTH_READ_RATE (300), GROWTH_LIST_RATE (100), GROWTH_WRITE_RATE (300), for GROWTH_SECONDS (8).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { helpFromHeader } from '../help.ts';
import { ROOT } from '../processes.ts';
import { progress } from '../progress.ts';
import { lineChart, page, writeReport } from './charts.ts';
import { intEnv, runBench, say } from './lifecycle.ts';
import { assertScratchDatabase } from './pg.ts';
import { type Request, rateRun, recordBody } from './rate.ts';
import { formatTable, round } from './report.ts';
import { loadSyntheticRecords, SOURCES } from './synthetic-records.ts';

helpFromHeader(import.meta.url);

const DAY_MS = 86_400_000;
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
  process.stderr.write(`${String(error)}\n`);
  process.exit(2);
}
const sizes = [...new Set([Math.min(settings.baseRows, settings.rows), settings.rows])];

await runBench({
  name: 'growth',
  database,
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 1_500),
  async body(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl, application_name: 'bench-growth' });
    await client.connect();
    const endMs = Date.now() - 60_000;
    const startMs = endMs - 6.9 * DAY_MS;
    const results: Array<Record<string, string | number | null>> = [];
    let loaded = 0;
    let loadSeconds = 0;
    try {
      for (const size of sizes) {
        const began = performance.now();
        const load = progress(`bench:growth loading to ${size} rows`, size, { unit: 'rows' });
        load.update(loaded);
        await loadSyntheticRecords(client, {
          ...{ from: loaded + 1, to: size, total: settings.rows, startMs, endMs },
          progress: (n) => load.update(n),
        });
        load.finish('CHECKPOINT and VACUUM (ANALYZE) next');
        await client.query('CHECKPOINT');
        loadSeconds += (performance.now() - began) / 1000;
        loaded = size;
        const bytes = Number((await client.query('SELECT pg_database_size(current_database()) AS b')).rows[0]?.b ?? 0);
        const sampled = await client.query<{ id: string }>(
          `SELECT id FROM records TABLESAMPLE SYSTEM (${Math.min(100, (5_000 / size) * 2_000)}) LIMIT 20000`,
        );
        const ids = sampled.rows.map((r) => r.id).sort(() => Math.random() - 0.5);
        say(
          `${size} rows: ${loadSeconds.toFixed(0)} s of loading so far, database ${(bytes / 2 ** 30).toFixed(2)} GiB`,
        );
        const query = await ctx.startBundle(
          'query',
          ctx.functionEnv({ REDIS_URL: undefined, QUERY_RESPONSE_CACHE_ENTRIES: '0' }),
        );
        const ingest = await ctx.startBundle('ingest', ctx.functionEnv({ REDIS_URL: undefined }));
        let n = 0;
        const source = () => `source-${String(n++ % SOURCES).padStart(2, '0')}`;
        const cases: Array<{ name: string; rate: number; make: () => Request; pid: number }> = [
          {
            name: 'get-by-id',
            rate: settings.readRate,
            make: () => ({ method: 'GET', url: `${query.url}/data/${ids[n++ % ids.length]}` }),
            pid: query.process.pid,
          },
          {
            name: 'list-page',
            rate: settings.listRate,
            make: () => ({ method: 'GET', url: `${query.url}/data?source=${source()}&limit=100` }),
            pid: query.process.pid,
          },
          {
            name: 'post-one',
            rate: settings.writeRate,
            make: () => ({
              method: 'POST',
              url: `${ingest.url}/data`,
              body: recordBody(randomUUID(), 'bench-growth', n++),
            }),
            pid: ingest.process.pid,
          },
        ];
        for (const c of cases) {
          const common = { rate: c.rate, dir: ctx.tmp, headers: ctx.requestHeaders };
          await rateRun({
            ...common,
            requests: Array.from({ length: c.rate * 2 }, c.make),
            seconds: 2,
            name: `${c.name}-warm`,
          });
          const o = await rateRun({
            ...common,
            requests: Array.from({ length: c.rate * settings.seconds }, c.make),
            seconds: settings.seconds,
            name: c.name,
            servers: { server: c.pid },
          });
          say(`  ${size} rows, ${c.name}: p50 ${o.p50Ms} ms, p99 ${o.p99Ms} ms, errors ${o.errorRatio}`);
          results.push({
            rows: size,
            case: c.name,
            rate: c.rate,
            p50_ms: o.p50Ms,
            p99_ms: o.p99Ms,
            server_cpu_us_per_request: o.cpuUsPerRequest.server ?? null,
            error_ratio: o.errorRatio,
            database_gib: round(bytes / 2 ** 30, 3),
          });
        }
        await Promise.all([query.process.stop(25_000), ingest.process.stop(25_000)]);
      }
    } finally {
      await client.end();
    }
    for (const r of results) {
      const base = results.find((b) => b.rows === sizes[0] && b.case === r.case);
      for (const key of ['p50_ms', 'p99_ms', 'server_cpu_us_per_request']) {
        r[`${key.split('_')[0]}_ratio`] = base?.[key] ? round(Number(r[key]) / Number(base[key]), 3) : null;
      }
    }
    const columns = Object.keys(results[0] ?? {});
    process.stdout.write(
      `\n${formatTable(
        columns,
        results.map((r) => columns.map((c) => String(r[c] ?? '-'))),
      )}\n\n` +
        `vegeta fixed rate, 2 s warm-up + ${settings.seconds} s per case; ratios to ${sizes[0]} rows; ` +
        `load + VACUUM ANALYZE ${loadSeconds.toFixed(0)} s for ${loaded} rows.\n`,
    );
    const cases = [...new Set(results.map((r) => String(r.case)))];
    const chart = lineChart({
      title: 'p99 against rows in the table (fixed-rate vegeta runs)',
      xLabel: 'rows (log)',
      yLabel: 'p99, ms',
      logX: true,
      xTicks: sizes.map((n) => [n, n >= 1e6 ? `${n / 1e6}M` : String(n)] as const),
      series: cases.map((name) => ({
        name,
        points: results.filter((r) => r.case === name).map((r) => [Number(r.rows), Number(r.p99_ms)] as const),
      })),
    });
    const written = await writeReport(
      join(ROOT, 'bench-results', 'growth'),
      page('npm run bench:growth', `${new Date().toISOString()}; ratios to ${sizes[0]} rows in growth.json`, [chart]),
      say,
    );
    say(`report: ${written.join(', ')}`);
    return { settings, database, sizes, load_seconds: round(loadSeconds, 1), results };
  },
});
