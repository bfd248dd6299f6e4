/**
 * Fault g — PostgreSQL frozen (every one of its processes SIGSTOPped, as a stalled host or a long GC-like pause
 * would) under writes, with a short write deadline (issue 12 item 3). Each POST is answered 201 or 503, none is
 * left hanging past the deadline for long, and after SIGCONT no record whose request was answered anything but
 * 201 is stored: a write given up is never committed afterwards. Every 201 is stored.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from '@jest/globals';
import { postgres } from '../../scripts/services/postgres.ts';
import { type SpawnedProcess, sleep } from '../support/processes.ts';
import {
  latencySummary,
  missing,
  postRecord,
  restoreServices,
  runClients,
  runId,
  startBundle,
  storedIds,
  type Timed,
  timedFetch,
  warnIfBundlesStale,
} from './support.ts';

const RUN = runId();
const DEADLINE_MS = 1_500;
const FROZEN_MS = 4_000;
/** Longer than the freeze: a client that gives up first would be a failure the service did not answer. */
const CLIENT_TIMEOUT_MS = 10_000;
const spawned: SpawnedProcess[] = [];
let frozen: number[] = [];

const signal = (pids: readonly number[], name: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // gone already
    }
  }
};

afterAll(async () => {
  signal(frozen, 'SIGCONT');
  await Promise.all(spawned.map((p) => p.kill()));
  await restoreServices('postgres');
});

/** The postmaster and every backend and worker it forked. */
function postgresProcesses(): number[] {
  const [postmaster] = postgres.pids();
  if (postmaster === undefined) throw new Error('PostgreSQL is not running');
  const children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
  return [postmaster, ...children];
}

it('g. PostgreSQL frozen: writes past their deadline get 503 and are never committed after SIGCONT', async () => {
  warnIfBundlesStale();
  const source = `fault.g.${RUN}`;
  const ingest = await startBundle(
    'ingest',
    { K_SERVICE: `fault-g-${RUN}`, LOG_LEVEL: 'error', WRITE_DEADLINE_MS: String(DEADLINE_MS) },
    spawned,
  );
  const posts: Array<Timed & { id: string; frozen: boolean }> = [];
  let isFrozen = false;
  let stop = false;
  const load = runClients(
    4,
    () => stop,
    async () => {
      const during = isFrozen;
      posts.push({ ...(await postRecord(ingest.url, source, CLIENT_TIMEOUT_MS)), frozen: during });
    },
    20,
  );
  try {
    await sleep(800);
    frozen = postgresProcesses();
    signal(frozen, 'SIGSTOP');
    isFrozen = true;
    await sleep(FROZEN_MS);
  } finally {
    signal(frozen, 'SIGCONT');
    isFrozen = false;
    frozen = [];
  }
  await sleep(1_500);
  stop = true;
  await load;
  // Whatever a resumed PostgreSQL still had to do is done by now.
  await sleep(1_000);

  const stored = await storedIds(source);
  const acknowledged = posts.filter((r) => r.status === 201).map((r) => r.id);
  const failed = posts.filter((r) => r.status !== 201);
  const committedAfterFailure = failed.filter((r) => stored.has(r.id));
  const whileFrozen = posts.filter((r) => r.frozen);
  console.log(
    `fault postgres-frozen: sent ${posts.length}, 201 ${acknowledged.length}, 503 ` +
      `${posts.filter((r) => r.status === 503).length}, other ${posts.filter((r) => r.status !== 201 && r.status !== 503).length}; ` +
      `committed after their request failed ${committedAfterFailure.length}; lost ${missing(acknowledged, stored).length}; ` +
      `answers sent while frozen ${latencySummary(whileFrozen.map((r) => r.ms))}`,
  );

  expect(posts.filter((r) => r.status !== 201 && r.status !== 503).map((r) => `${r.status} ${r.error ?? ''}`)).toEqual(
    [],
  );
  expect(whileFrozen.filter((r) => r.status === 503).length).toBeGreaterThan(0);
  expect(committedAfterFailure.map((r) => r.id)).toEqual([]);
  expect(missing(acknowledged, stored)).toEqual([]);
  expect(ingest.proc.child.exitCode).toBeNull();
}, 90_000);

it('g. PostgreSQL frozen: a read that needs it is answered 503 by the client-side bound, not left hanging', async () => {
  // statement_timeout 1 s: the server cannot enforce it while stopped, so the client's own bound (+2 s) answers.
  const query = await startBundle(
    'query',
    { K_SERVICE: `fault-g-read-${RUN}`, LOG_LEVEL: 'error', DATABASE_STATEMENT_TIMEOUT_MS: '1000' },
    spawned,
  );
  let answers: Timed[] = [];
  try {
    frozen = postgresProcesses();
    signal(frozen, 'SIGSTOP');
    // Ids no cache has seen: each GET must ask PostgreSQL.
    answers = await Promise.all(
      [1, 2, 3].map(() => timedFetch(`${query.url}/data/${randomUUID()}`, {}, CLIENT_TIMEOUT_MS)),
    );
  } finally {
    signal(frozen, 'SIGCONT');
    frozen = [];
  }
  console.log(
    `fault postgres-frozen (reads): ${answers.map((a) => `${a.status || a.error} in ${a.ms.toFixed(0)} ms`).join(', ')}`,
  );
  expect(answers.map((a) => ({ status: a.status, retryAfter: a.retryAfter !== null }))).toEqual(
    Array(3).fill({ status: 503, retryAfter: true }),
  );
  expect(query.proc.child.exitCode).toBeNull();
}, 60_000);
