/**
 * Fault a — Kafka down at write time (invariant 2): the ingest bundle starts while the broker is stopped, accepts
 * every record (201, latency unhurt: the outbox decouples writes from Kafka), and once the broker is back its
 * relay publishes every acknowledged record's event. Counted with a consumer on a topic of this run only.
 */
import { afterAll, expect, it } from '@jest/globals';
import type { SpawnedProcess } from '../support/processes.ts';
import {
  type Bundle,
  consumeRecordIds,
  latencySummary,
  missing,
  percentile,
  postRecord,
  requireEnv,
  restoreServices,
  runClients,
  runId,
  services,
  startBundle,
  waitForTopic,
  warnIfBundlesStale,
} from './support.ts';

const RUN = runId();
const N = 200;
const WARM_UP = 20;
const CLIENTS = 4;
const DELIVERY_BUDGET_MS = 60_000;
const spawned: SpawnedProcess[] = [];

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
  await restoreServices('kafka');
});

/** POSTs `count` records from `CLIENTS` concurrent clients; returns acknowledged ids, latencies and failures. */
async function post(ingest: Bundle, source: string, count: number) {
  const acknowledged: string[] = [];
  const latencies: number[] = [];
  const failures: string[] = [];
  let sent = 0;
  await runClients(
    CLIENTS,
    () => sent >= count,
    async () => {
      const n = sent++;
      const reply = await postRecord(ingest.url, source);
      if (reply.status === 201) acknowledged.push(reply.id);
      else failures.push(`${reply.status} ${reply.error ?? reply.body.slice(0, 200)}`);
      if (n >= WARM_UP) latencies.push(reply.ms);
    },
  );
  return { sent, acknowledged, latencies, failures };
}

it('a. Kafka stopped: every record is acknowledged at once, and every event reaches Kafka when it is back', async () => {
  warnIfBundlesStale();
  const brokers = requireEnv('KAFKA_BROKERS');
  const topic = `fault.a.${RUN}`;
  const source = `fault.a.${RUN}`;
  let ingest: Bundle | undefined;
  let down: Awaited<ReturnType<typeof post>> | undefined;
  let kafkaBackAt = 0;
  try {
    await services('down', 'kafka');
    ingest = await startBundle(
      'ingest',
      { KAFKA_BROKERS: brokers, KAFKA_TOPIC: topic, K_SERVICE: `fault-a-${RUN}`, LOG_LEVEL: 'warn' },
      spawned,
    );
    down = await post(ingest, source, N);
  } finally {
    await services('up', 'kafka');
    kafkaBackAt = performance.now();
  }
  if (ingest === undefined || down === undefined) throw new Error('unreachable: the try block completed');

  // The relay creates the topic once it reaches the broker, then drains the outbox backlog.
  await waitForTopic(topic, DELIVERY_BUDGET_MS);
  const wanted = new Set(down.acknowledged);
  const delivered = await consumeRecordIds(
    topic,
    wanted,
    Math.max(5_000, DELIVERY_BUDGET_MS - (performance.now() - kafkaBackAt)),
  );
  const deliveredAfterMs = performance.now() - kafkaBackAt;

  // For comparison: the same load with Kafka up (and the backlog drained), and those events must arrive too.
  const up = await post(ingest, source, N);
  const upDelivered = await consumeRecordIds(topic, new Set(up.acknowledged), 30_000);

  const lost = missing(down.acknowledged, delivered.seen);
  console.log(
    `fault kafka-down: sent ${down.sent}, acknowledged ${down.acknowledged.length}, found ${delivered.seen.size}, ` +
      `lost ${lost.length} (all events on Kafka ${(deliveredAfterMs / 1000).toFixed(1)} s after it was back, ` +
      `${delivered.messages} messages read; POST latency with Kafka down ${latencySummary(down.latencies)}; ` +
      `with Kafka up ${latencySummary(up.latencies)}; Kafka-up check: sent ${up.sent}, acknowledged ` +
      `${up.acknowledged.length}, found ${upDelivered.seen.size})`,
  );
  if (lost.length > 0) console.log(`kafka consumer log: ${delivered.logs.slice(-10).join(' | ')}`);

  expect(down.failures).toEqual([]);
  expect(down.acknowledged).toHaveLength(N);
  expect(lost).toEqual([]);
  expect(deliveredAfterMs).toBeLessThan(DELIVERY_BUDGET_MS);
  // Kafka being down must not cost the writer: bounded tail, and no worse than normal beyond noise.
  expect(percentile(down.latencies, 99)).toBeLessThan(500);
  expect(percentile(down.latencies, 50)).toBeLessThan(percentile(up.latencies, 50) * 2 + 25);
  expect(up.failures).toEqual([]);
  expect(missing(up.acknowledged, upDelivered.seen)).toEqual([]);
}, 240_000);
