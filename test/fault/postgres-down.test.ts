/**
 * Fault d — PostgreSQL stopped under writes (invariant 1 and the HTTP contract's "dependency down 503"): the ingest
 * bundle answers every POST promptly with 503 problem+json and Retry-After (never a hang, never a 500), turns
 * not-ready, and recovers by itself — 201 and /readyz 200 again — once PostgreSQL is back, without a restart.
 * Every 201 it gave, before, during or after the outage, must be in PostgreSQL.
 */
import { afterAll, expect, it } from '@jest/globals';
import { type SpawnedProcess, sleep } from '../support/processes.ts';
import {
  eventually,
  latencySummary,
  missing,
  postRecord,
  restoreServices,
  runClients,
  runId,
  services,
  startBundle,
  storedIds,
  type Timed,
  timedFetch,
  warnIfBundlesStale,
} from './support.ts';

const RUN = runId();
const CLIENTS = 2;
const PAUSE_MS = 50;
/** The whole request bound (no hang); every answer must come well within it. */
const REQUEST_TIMEOUT_MS = 5_000;
const ANSWER_BUDGET_MS = 2_500;
const OUTAGE_MS = 3_000;
const RECOVERY_BUDGET_MS = 15_000;
const READINESS_CACHE_MS = 1_000;
const spawned: SpawnedProcess[] = [];

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
  await restoreServices('postgres');
});

type Phase = 'before' | 'stopping' | 'down' | 'starting' | 'after';

it('d. PostgreSQL stopped: ingest answers 503 problem+json with Retry-After promptly, and recovers by itself', async () => {
  warnIfBundlesStale();
  const source = `fault.d.${RUN}`;
  const ingest = await startBundle('ingest', { K_SERVICE: `fault-d-${RUN}`, LOG_LEVEL: 'warn' }, spawned);

  let phase: Phase = 'before';
  const posts: Array<Timed & { id: string; phase: Phase }> = [];
  const probes: Array<Timed & { phase: Phase; startedAt: number }> = [];
  let stop = false;
  const load = Promise.all([
    runClients(
      CLIENTS,
      () => stop,
      async () => {
        const at = phase;
        posts.push({ ...(await postRecord(ingest.url, source, REQUEST_TIMEOUT_MS)), phase: at });
      },
      PAUSE_MS,
    ),
    runClients(
      1,
      () => stop,
      async () => {
        const [at, startedAt] = [phase, performance.now()];
        const reply = await timedFetch(`${ingest.url}/readyz`, {}, REQUEST_TIMEOUT_MS);
        probes.push({ ...reply, phase: at, startedAt });
      },
      200,
    ),
  ]);

  let downAt = Number.POSITIVE_INFINITY;
  let backAt = 0;
  let created = Number.NaN;
  let ready = Number.NaN;
  const outageStarted = performance.now();
  try {
    try {
      await sleep(500);
      phase = 'stopping';
      await services('down', 'postgres');
      phase = 'down';
      downAt = performance.now();
      await sleep(OUTAGE_MS);
    } finally {
      phase = 'starting';
      await services('up', 'postgres');
      phase = 'after';
      backAt = performance.now();
    }
    const seen = (list: ReadonlyArray<Timed & { phase: Phase }>, status: number) => () =>
      list.some((r) => r.phase === 'after' && r.status === status);
    created = await eventually('a 201 after PostgreSQL is back', RECOVERY_BUDGET_MS, seen(posts, 201), 50);
    ready = await eventually('/readyz 200 after PostgreSQL is back', RECOVERY_BUDGET_MS, seen(probes, 200), 50);
    await sleep(300);
  } finally {
    stop = true;
    await load;
  }
  const outageMs = backAt - outageStarted;

  const acknowledged = posts.filter((r) => r.status === 201).map((r) => r.id);
  const stored = await storedIds(source);
  const lost = missing(acknowledged, stored);
  const during = posts.filter((r) => r.phase !== 'before' && r.phase !== 'after');
  const rejected = posts.filter((r) => r.status === 503);
  const isProblem503 = (r: Timed) =>
    r.status === 503 && r.contentType.startsWith('application/problem+json') && /^\d+$/.test(r.retryAfter ?? '');
  console.log(
    `fault postgres-down: sent ${posts.length}, acknowledged ${acknowledged.length}, found ` +
      `${acknowledged.length - lost.length}, lost ${lost.length} (${rejected.length} answered 503; POST answers ` +
      `while PostgreSQL stopped, was down and restarted ${latencySummary(during.map((r) => r.ms))}; /readyz ` +
      `503 ${probes.filter((r) => r.status === 503).length} times; outage ${(outageMs / 1000).toFixed(1)} s; ` +
      `201 again ${(created / 1000).toFixed(1)} s and /readyz 200 ${(ready / 1000).toFixed(1)} s after it was back)`,
  );

  // Every answer, whatever the phase: 201, or a prompt 503 problem+json with Retry-After. Nothing else, no hang.
  const wrong = posts.filter((r) => r.status !== 201 && !isProblem503(r));
  expect(wrong.map((r) => `${r.phase}: ${r.status} ${r.error ?? ''} ${r.contentType} ${r.body.slice(0, 200)}`)).toEqual(
    [],
  );
  const slow = posts.filter((r) => r.ms >= ANSWER_BUDGET_MS);
  expect(slow.map((r) => `${r.phase}: ${r.status} after ${r.ms.toFixed(0)} ms`)).toEqual([]);
  expect(posts.filter((r) => r.phase === 'down' && r.status !== 503)).toEqual([]);
  expect(posts.filter((r) => r.phase === 'down').length).toBeGreaterThan(10);
  // Readiness is cached for up to a second: from then on, every probe of the outage must say 503.
  const settledProbes = probes.filter((r) => r.phase === 'down' && r.startedAt > downAt + READINESS_CACHE_MS);
  expect(settledProbes.length).toBeGreaterThan(0);
  expect(settledProbes.filter((r) => r.status !== 503).map((r) => `${r.status} ${r.body}`)).toEqual([]);
  expect(probes.filter((r) => r.status === 0)).toEqual([]);
  expect(created).toBeLessThan(RECOVERY_BUDGET_MS);
  expect(ready).toBeLessThan(RECOVERY_BUDGET_MS);
  expect(ingest.proc.child.exitCode).toBeNull();
  expect(lost).toEqual([]);
}, 120_000);
