/**
 * `npm run bench:cache`: the query bundle's cache hit ratio and read latency with and without Redis (issue 3).
 *
 * Prefills BENCH_CACHE_IDS records (10000) through the ingest bundle, then for each configuration starts the query
 * bundle afresh (each with a Redis key prefix of its own, so each starts cold) and reads with vegeta at a fixed
 * rate BENCH_CACHE_RATE (1000 req/s, below saturation): a warm-up of BENCH_CACHE_WARMUP_SECONDS (3), then the
 * measured BENCH_CACHE_SECONDS (10). Reads are `GET /data/{id}`, 80 % of them on 20 % of the ids.
 *
 * - `no-redis`: REDIS_URL unset, QUERY_RESPONSE_CACHE_ENTRIES=0: every read goes to PostgreSQL;
 * - `redis`: Redis, QUERY_RESPONSE_CACHE_ENTRIES=0: every read is a Redis lookup (a miss then reads PostgreSQL);
 * - `redis+tier`: the defaults: the in-process tier of ready responses in front of Redis.
 *
 * Hit ratio: Redis hits ÷ lookups from `data_service_cache_requests_total` (delta over the measured run); the
 * in-process tier has no counter, so its hits are the reads that made no Redis lookup. Table on stdout, JSON in
 * bench-results/cache.json. Database data_service_bench_cache, dropped at the end (BENCH_KEEP_DB=1 keeps it).
 */
import { join } from 'node:path';
import {
  attack,
  formatTable,
  intEnv,
  prefill,
  recordId,
  runBench,
  scrapeCounter,
  skewedIndex,
  writeTargets,
} from './harness.ts';
import { say } from './proc.ts';
import { round } from './report.ts';

const settings = {
  ids: intEnv('BENCH_CACHE_IDS', 10_000),
  rate: intEnv('BENCH_CACHE_RATE', 1_000),
  seconds: intEnv('BENCH_CACHE_SECONDS', 10),
  warmupSeconds: intEnv('BENCH_CACHE_WARMUP_SECONDS', 3),
};

await runBench({
  name: 'cache',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 300),
  async body(ctx) {
    const ingest = await ctx.startBundle('ingest', ctx.functionEnv());
    const ids = Array.from({ length: settings.ids }, recordId);
    say(`prefilling ${ids.length} records`);
    await prefill(ingest.port, ids, 'bench-cache');
    await ingest.process.stop(15_000);

    const configs = [
      { name: 'no-redis', env: { REDIS_URL: undefined, QUERY_RESPONSE_CACHE_ENTRIES: '0' } },
      { name: 'redis', env: { QUERY_RESPONSE_CACHE_ENTRIES: '0', REDIS_KEY_PREFIX: `${ctx.redisPrefix}redis:` } },
      { name: 'redis+tier', env: { REDIS_KEY_PREFIX: `${ctx.redisPrefix}tier:` } },
    ] as const;
    const rows: Record<string, unknown>[] = [];
    for (const config of configs) {
      const query = await ctx.startBundle('query', ctx.functionEnv(config.env));
      const base = `http://127.0.0.1:${query.port}/data/`;
      const reads = (n: number) =>
        Array.from({ length: n }, () => ({
          method: 'GET' as const,
          url: `${base}${ids[skewedIndex(ids.length, 0.2, 0.8)]}`,
        }));
      const warmFile = join(ctx.tmp, `${config.name}-warm.jsonl`);
      const file = join(ctx.tmp, `${config.name}.jsonl`);
      writeTargets(warmFile, reads(settings.rate * settings.warmupSeconds));
      writeTargets(file, reads(settings.rate * settings.seconds));
      say(`${config.name}: ${settings.warmupSeconds} s warm-up + ${settings.seconds} s at ${settings.rate} req/s`);
      await attack({
        targets: warmFile,
        rate: settings.rate,
        seconds: settings.warmupSeconds,
        dir: ctx.tmp,
        name: `${config.name}-warm`,
      });
      const metric = 'data_service_cache_requests_total';
      const scrape = async () => ({
        hit: await scrapeCounter(query.port, metric, { result: 'hit' }),
        miss: await scrapeCounter(query.port, metric, { result: 'miss' }),
        skipped: await scrapeCounter(query.port, metric, { result: 'skipped' }),
      });
      const c0 = await scrape();
      const o = await attack({
        targets: file,
        rate: settings.rate,
        seconds: settings.seconds,
        dir: ctx.tmp,
        name: config.name,
        watch: { query: query.process.pid },
      });
      const c1 = await scrape();
      await query.process.stop(15_000);
      const hits = c1.hit - c0.hit;
      const lookups = hits + (c1.miss - c0.miss) + (c1.skipped - c0.skipped);
      const tierHits = config.name === 'redis+tier' ? Math.max(0, o.requests - lookups) : 0;
      const row = {
        config: config.name,
        rate: settings.rate,
        requests: o.requests,
        throughput: o.throughput,
        p50_ms: o.p50Ms,
        p99_ms: o.p99Ms,
        error_ratio: o.errorRatio,
        redis_lookups: lookups,
        redis_hits: hits,
        redis_hit_ratio: lookups > 0 ? round(hits / lookups, 4) : null,
        tier_hits: tierHits,
        hit_ratio: o.requests > 0 ? round((hits + tierHits) / o.requests, 4) : 0,
        query_cores: o.processCores.query,
        query_cpu_us_per_request:
          o.requests > 0 ? round(((o.processCores.query ?? 0) * o.seconds * 1e6) / o.requests, 0) : null,
        postgres_cores: o.postgresCores,
        generator_cores: o.generatorCores,
        machine_busy_cores: o.machineBusyCores,
      };
      say(`  hit ratio ${row.hit_ratio}, p50 ${o.p50Ms} ms, p99 ${o.p99Ms} ms, errors ${o.errorRatio}`);
      rows.push(row);
    }
    const fmt = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
    const header = [
      'config',
      'req/s',
      'hit_ratio',
      'redis_hit_ratio',
      'p50_ms',
      'p99_ms',
      'srv_us/req',
      'pg_cores',
      'errors',
    ];
    process.stdout.write(
      `\n${formatTable(
        header,
        rows.map((r) =>
          [
            r.config,
            r.throughput,
            r.hit_ratio,
            r.redis_hit_ratio,
            r.p50_ms,
            r.p99_ms,
            r.query_cpu_us_per_request,
            r.postgres_cores,
            r.error_ratio,
          ].map(fmt),
        ),
      )}\n\nvegeta, ${settings.rate} req/s fixed rate, ${settings.seconds} s measured after ${settings.warmupSeconds} s warm-up; ` +
        `${settings.ids} ids, 80 % of reads on 20 % of them.\n`,
    );
    return { settings, rows };
  },
});
