/**
 * `npm run bench:cache`: the query bundle's hit ratio, latency and CPU per read with and without Redis and the
 * in-process tier. Prefills BENCH_CACHE_IDS records (10000) through ingest, then per configuration starts the query
 * bundle afresh (a Redis key prefix of its own, so each starts cold) and reads `GET /data/{id}` with vegeta at
 * BENCH_CACHE_RATE (1000 req/s, below saturation), 80 % of the reads on 20 % of the ids: a warm-up of
 * BENCH_CACHE_WARMUP_SECONDS (3), then BENCH_CACHE_SECONDS (10) measured.
 *
 * - `no-redis`: REDIS_URL unset, QUERY_RESPONSE_CACHE_ENTRIES=0: every read goes to PostgreSQL;
 * - `redis`: QUERY_RESPONSE_CACHE_ENTRIES=0: every read is a Redis lookup (a miss then reads PostgreSQL);
 * - `redis+tier`: the deployed default, the in-process tier of ready responses in front of Redis.
 *
 * Redis hit ratio from `data_service_cache_requests_total` (delta over the measured run); the tier's hits are the
 * reads that made no Redis lookup.
 */
import { randomUUID } from 'node:crypto';
import { helpFromHeader } from '../help.ts';
import { intEnv, runBench, say } from './lifecycle.ts';
import { prefill, rateRun, scrapeCounter, skewedIndex } from './rate.ts';
import { formatTable, round } from './report.ts';

helpFromHeader(import.meta.url);

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
    const ids = Array.from({ length: settings.ids }, randomUUID);
    say(`prefilling ${ids.length} records`);
    await prefill(ingest.url, ids, 'bench-cache', ctx.requestHeaders);
    await ingest.process.stop(25_000);
    const configs = [
      { name: 'no-redis', env: { REDIS_URL: undefined, QUERY_RESPONSE_CACHE_ENTRIES: '0' } },
      { name: 'redis', env: { QUERY_RESPONSE_CACHE_ENTRIES: '0', REDIS_KEY_PREFIX: `${ctx.redisPrefix}redis:` } },
      { name: 'redis+tier', env: { REDIS_KEY_PREFIX: `${ctx.redisPrefix}tier:` } },
    ] as const;
    const rows: Array<Record<string, string | number | null>> = [];
    for (const config of configs) {
      const query = await ctx.startBundle('query', ctx.functionEnv(config.env));
      const reads = (n: number) =>
        Array.from({ length: n }, () => ({
          method: 'GET' as const,
          url: `${query.url}/data/${ids[skewedIndex(ids.length, 0.2, 0.8)]}`,
        }));
      say(`${config.name}: ${settings.warmupSeconds} s warm-up + ${settings.seconds} s at ${settings.rate} req/s`);
      const common = { rate: settings.rate, dir: ctx.tmp };
      await rateRun({
        headers: ctx.requestHeaders,
        ...common,
        requests: reads(settings.rate * settings.warmupSeconds),
        seconds: settings.warmupSeconds,
        name: `${config.name}-warm`,
      });
      const counters = async () => {
        const metric = 'data_service_cache_requests_total';
        const [hit, miss, skipped] = await Promise.all(
          ['hit', 'miss', 'skipped'].map((result) => scrapeCounter(query.url, metric, { result })),
        );
        return { hit: hit ?? 0, lookups: (hit ?? 0) + (miss ?? 0) + (skipped ?? 0) };
      };
      const c0 = await counters();
      const o = await rateRun({
        headers: ctx.requestHeaders,
        ...common,
        requests: reads(settings.rate * settings.seconds),
        seconds: settings.seconds,
        name: config.name,
        servers: { query: query.process.pid },
      });
      const c1 = await counters();
      await query.process.stop(25_000);
      const hits = c1.hit - c0.hit;
      const lookups = c1.lookups - c0.lookups;
      const tierHits = config.name === 'redis+tier' ? Math.max(0, o.requests - lookups) : 0;
      rows.push({
        config: config.name,
        throughput: o.throughput,
        hit_ratio: o.requests > 0 ? round((hits + tierHits) / o.requests, 4) : null,
        redis_hit_ratio: lookups > 0 ? round(hits / lookups, 4) : null,
        p50_ms: o.p50Ms,
        p99_ms: o.p99Ms,
        query_cpu_us_per_request: o.cpuUsPerRequest.query ?? null,
        machine_cpu_us_per_request: o.cpuUsPerRequest.machine_share ?? null,
        error_ratio: o.errorRatio,
      });
      say(`  hit ratio ${rows.at(-1)?.hit_ratio}, p99 ${o.p99Ms} ms, errors ${o.errorRatio}`);
    }
    const columns = Object.keys(rows[0] ?? {});
    process.stdout.write(
      `\n${formatTable(
        columns,
        rows.map((r) => columns.map((c) => String(r[c] ?? '-'))),
      )}\n\n` +
        `vegeta at ${settings.rate} req/s, ${settings.seconds} s measured after ${settings.warmupSeconds} s warm-up; ` +
        `${settings.ids} ids, 80 % of the reads on 20 % of them; CPU in µs per request.\n`,
    );
    return { settings, rows };
  },
});
