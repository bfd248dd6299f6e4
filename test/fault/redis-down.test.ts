/**
 * Fault c — Redis stopped under a read load (invariant 3): the query bundle keeps answering every read 200 from
 * PostgreSQL within a latency budget (command timeouts, no offline queue, circuit breaker), reports Redis down in
 * /metrics, and once Redis is back the cache is used again (hits grow, dependency_up returns to 1).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from '@jest/globals';
import { createRecordWriter } from '#lib/db';
import { createTestDatabase } from '../support/database.ts';
import { type SpawnedProcess, sleep } from '../support/processes.ts';
import {
  eventually,
  latencySummary,
  metricValue,
  percentile,
  requireEnv,
  restoreServices,
  runClients,
  runId,
  scrapeMetrics,
  services,
  startBundle,
  type Timed,
  timedFetch,
  warnIfBundlesStale,
} from './support.ts';

const RUN = runId();
const RECORDS = 100;
const CLIENTS = 4;
const PAUSE_MS = 5;
const P99_BUDGET_MS = 250;
/** No read may hang: the worst single read, whatever the phase. */
const MAX_READ_MS = 1_000;
const RECOVERY_BUDGET_MS = 20_000;
const spawned: SpawnedProcess[] = [];

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
  await restoreServices('redis');
});

type Phase = 'redis up' | 'redis down' | 'redis back';

it('c. Redis stopped during a read load: every read answers 200 from PostgreSQL in budget; hits resume after', async () => {
  warnIfBundlesStale();
  const source = `fault.c.${RUN}`;
  const db = createTestDatabase(2);
  const ids = Array.from({ length: RECORDS }, () => randomUUID());
  try {
    const store = createRecordWriter({ db, idempotencyTtlHours: 24 });
    const now = new Date().toISOString();
    await store.insert(
      ids.map((id, n) => ({ id, source, type: 'fault', timestamp: now, payload: { n }, payloadJson: `{"n":${n}}` })),
    );
  } finally {
    await db.destroy();
  }

  const query = await startBundle(
    'query',
    {
      REDIS_URL: requireEnv('REDIS_URL'),
      REDIS_KEY_PREFIX: `fault-c-${RUN}:`,
      K_SERVICE: `fault-c-${RUN}`,
      LOG_LEVEL: 'warn',
    },
    spawned,
  );
  const metric = async (name: string, labels: Record<string, string>) =>
    metricValue(await scrapeMetrics(query.url), name, labels) ?? Number.NaN;
  const hits = () => metric('data_service_cache_requests_total', { result: 'hit' });
  const misses = () => metric('data_service_cache_requests_total', { result: 'miss' });
  const redisUp = () => metric('data_service_dependency_up', { dependency: 'redis' });

  let phase: Phase = 'redis up';
  const reads: Array<Timed & { phase: Phase; ok: boolean }> = [];
  let stop = false;
  let sequence = 0;
  const load = runClients(
    CLIENTS,
    () => stop,
    async () => {
      const readPhase = phase;
      const n = sequence++;
      const id = ids[n % RECORDS] ?? '';
      // Mostly by id; every tenth read a list page of the source.
      const list = n % 10 === 9;
      const reply = await timedFetch(
        list ? `${query.url}/data?source=${source}&limit=20` : `${query.url}/data/${id}`,
        {},
        2_000,
      );
      let ok = reply.status === 200;
      if (ok) {
        const body = JSON.parse(reply.body) as { id?: string; records?: unknown[] };
        ok = list ? body.records?.length === 20 : body.id === id;
      }
      reads.push({ ...reply, phase: readPhase, ok });
    },
    PAUSE_MS,
  );

  let hitsBefore = 0;
  let missesBefore = 0;
  let redisUpWhileDown = Number.NaN;
  let hitsAtRestore = Number.NaN;
  let recoveredMs = Number.NaN;
  let recoveredDependencyMs = Number.NaN;
  try {
    try {
      await sleep(2_000);
      [hitsBefore, missesBefore] = [await hits(), await misses()];
      phase = 'redis down';
      await services('down', 'redis');
      await sleep(3_000);
      redisUpWhileDown = await redisUp();
    } finally {
      phase = 'redis back';
      await services('up', 'redis');
    }
    hitsAtRestore = await hits();
    const restoredAt = performance.now();
    recoveredMs = await eventually('cache hits to grow again', RECOVERY_BUDGET_MS, async () => {
      return (await hits()) > hitsAtRestore + 20;
    });
    await eventually('dependency_up{redis} = 1', RECOVERY_BUDGET_MS, async () => (await redisUp()) === 1);
    recoveredDependencyMs = performance.now() - restoredAt;
    await sleep(500);
  } finally {
    stop = true;
    await load;
  }

  const latencies = (p: Phase) => reads.filter((r) => r.phase === p).map((r) => r.ms);
  const failed = reads.filter((r) => !r.ok);
  const answered = reads.filter((r) => r.status === 200).length;
  const hitRatio = hitsBefore / (hitsBefore + missesBefore);
  console.log(
    `fault redis-down: sent ${reads.length}, acknowledged ${answered}, found ${reads.length - failed.length}, ` +
      `lost ${failed.length} (reads; with Redis ${latencySummary(latencies('redis up'))}, hit ratio ` +
      `${(hitRatio * 100).toFixed(0)} %; Redis down ${latencySummary(latencies('redis down'))}; after restart ` +
      `${latencySummary(latencies('redis back'))}; hits grew again ${(recoveredMs / 1000).toFixed(1)} s and ` +
      `dependency_up{redis} was 1 ${(recoveredDependencyMs / 1000).toFixed(1)} s after Redis was back)`,
  );

  expect(failed.map((r) => `${r.phase}: ${r.status} ${r.error ?? r.body.slice(0, 200)}`)).toEqual([]);
  expect(latencies('redis down').length).toBeGreaterThan(100);
  expect(percentile(latencies('redis down'), 99)).toBeLessThan(P99_BUDGET_MS);
  expect(percentile(latencies('redis back'), 99)).toBeLessThan(P99_BUDGET_MS);
  expect(Math.max(...reads.map((r) => r.ms))).toBeLessThan(MAX_READ_MS);
  // The cache was in use before, the outage showed in /metrics, and the cache is in use again after.
  expect(hitsBefore).toBeGreaterThan(0);
  expect(redisUpWhileDown).toBe(0);
  expect(recoveredMs).toBeLessThan(RECOVERY_BUDGET_MS);
}, 120_000);
