/**
 * Fault b — the ingest process SIGKILLed mid-load (invariants 1 and 2): 8 clients POST concurrently, the process
 * dies without any chance to clean up, a new one starts. Every record that got a 201 must be in PostgreSQL and,
 * once the new process's relay has run, on Kafka. Requests that got no answer may or may not be stored.
 */
import { afterAll, expect, it } from '@jest/globals';
import { type SpawnedProcess, sleep } from '../support/processes.ts';
import {
  consumeRecordIds,
  latencySummary,
  missing,
  postRecord,
  requireEnv,
  runClients,
  runId,
  startBundle,
  storedIds,
  type Timed,
  waitForTopic,
  warnIfBundlesStale,
} from './support.ts';

const RUN = runId();
const CLIENTS = 8;
const LOAD_MS = 2_000;
const KILL_AFTER_MS = 1_000;
const spawned: SpawnedProcess[] = [];

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
});

it('b. ingest SIGKILLed during concurrent POSTs: every acknowledged record is in PostgreSQL and on Kafka', async () => {
  warnIfBundlesStale();
  const topic = `fault.b.${RUN}`;
  const source = `fault.b.${RUN}`;
  const env = {
    KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
    KAFKA_TOPIC: topic,
    K_SERVICE: `fault-b-${RUN}`,
    LOG_LEVEL: 'warn',
  };
  const first = await startBundle('ingest', env, spawned);

  const results: Array<Timed & { id: string; atKill: 'before' | 'after' }> = [];
  let killed = false;
  let stop = false;
  const load = runClients(
    CLIENTS,
    () => stop,
    async () => {
      const startedBeforeKill = !killed;
      const reply = await postRecord(first.url, source);
      results.push({ ...reply, atKill: startedBeforeKill ? 'before' : 'after' });
      // A dead port refuses at once: do not spin.
      if (reply.status === 0) await sleep(20);
    },
  );
  await sleep(KILL_AFTER_MS);
  killed = true;
  first.proc.child.kill('SIGKILL');
  const exit = await first.proc.waitForExit(5_000);
  await sleep(LOAD_MS - KILL_AFTER_MS);
  stop = true;
  await load;

  const second = await startBundle('ingest', env, spawned);
  const acknowledged = results.filter((r) => r.status === 201).map((r) => r.id);
  const unanswered = results.filter((r) => r.status === 0);
  const inFlightAtKill = unanswered.filter((r) => r.atKill === 'before');
  const other = results.filter((r) => r.status !== 201 && r.status !== 0);

  const inPostgres = await storedIds(source);
  await waitForTopic(topic, 30_000);
  const onKafka = await consumeRecordIds(topic, new Set(acknowledged), 60_000);
  const lostInPostgres = missing(acknowledged, inPostgres);
  const lostOnKafka = missing(acknowledged, onKafka.seen);
  const found = acknowledged.filter((id) => inPostgres.has(id) && onKafka.seen.has(id)).length;
  const storedUnanswered = unanswered.filter((r) => inPostgres.has(r.id)).length;
  console.log(
    `fault ingest-sigkill: sent ${results.length}, acknowledged ${acknowledged.length}, found ${found}, ` +
      `lost ${acknowledged.length - found} (lost in PostgreSQL ${lostInPostgres.length}, on Kafka ` +
      `${lostOnKafka.length}; unanswered ${unanswered.length}: ${inFlightAtKill.length} in flight at the kill, ` +
      `${unanswered.length - inFlightAtKill.length} refused after it, ${storedUnanswered} of them stored anyway; ` +
      `events on Kafka ${(onKafka.ms / 1000).toFixed(1)} s after the check began; 201 latency ` +
      `${latencySummary(results.filter((r) => r.status === 201).map((r) => r.ms))})`,
  );

  expect(exit.signal).toBe('SIGKILL');
  expect(second.proc.child.exitCode).toBeNull();
  // The kill landed on a live load: answers before it, requests without answers because of it.
  expect(acknowledged.length).toBeGreaterThan(50);
  expect(unanswered.length).toBeGreaterThan(0);
  expect(other.map((r) => `${r.status} ${r.body.slice(0, 200)}`)).toEqual([]);
  expect(lostInPostgres).toEqual([]);
  expect(lostOnKafka).toEqual([]);
}, 150_000);
