/**
 * Fault a — Kafka down at write time (invariant 2): the ingest bundle starts while the broker is stopped, accepts
 * every record (201, latency unhurt: the outbox decouples writes from Kafka), and once the broker is back its
 * relay publishes every acknowledged record's event. Counted with a consumer on a topic of this run only.
 *
 * Fault b — issue 12's outage: 40 batches of 1,000 records of ≈ 900-byte payloads (≈ 44 MiB of events, every
 * batch alone above the broker's 1 MiB `message.max.bytes`) and one event that alone exceeds it, written while
 * Kafka is stopped. Once it is back the backlog drains completely (invariants 2 and 6): the oversize event is in
 * `outbox_dead_letter`, every other event is on the topic exactly once (ids compared, messages counted).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from '@jest/globals';
import { databaseAt } from '../support/database.ts';
import { createPrivateDatabase } from '../support/private-database.ts';
import type { SpawnedProcess } from '../support/processes.ts';
import {
  type Bundle,
  consumeRecordIds,
  eventually,
  latencySummary,
  missing,
  percentile,
  postRecord,
  requireEnv,
  restoreServices,
  runClients,
  runId,
  scrapeMetrics,
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
  // Its relay would take the outbox rows of whatever runs next on this database.
  await ingest.proc.kill();
}, 240_000);

it('b. Kafka stopped under 40 batches of 1,000 records and one oversize event: the backlog drains completely', async () => {
  const brokers = requireEnv('KAFKA_BROKERS');
  const topic = `fault.b.${RUN}`;
  const source = `fault.b.${RUN}`;
  const payload = { text: 'x'.repeat(880), n: 1 };
  // A database of its own: no other relay may take (or add to) these outbox rows.
  const database = await createPrivateDatabase('fb');
  const ids: string[] = [];
  const oversizeId = randomUUID();
  let ingest: Bundle | undefined;
  let kafkaBackAt = 0;
  try {
    try {
      await services('down', 'kafka');
      ingest = await startBundle(
        'ingest',
        {
          DATABASE_URL: database.url,
          KAFKA_BROKERS: brokers,
          KAFKA_TOPIC: topic,
          K_SERVICE: `fault-b-${RUN}`,
          LOG_LEVEL: 'warn',
          BODY_LIMIT_BYTES: String(3 * 1024 * 1024),
          RECORD_PAYLOAD_MAX_BYTES: String(2 * 1024 * 1024),
        },
        spawned,
      );
      const url = ingest.url;
      const post = async (body: unknown) => {
        const response = await fetch(`${url}/data`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
        expect(response.status).toBe(201);
      };
      let batches = 0;
      await runClients(
        2,
        () => batches >= 40,
        async () => {
          const n = batches++;
          const records = Array.from({ length: 1_000 }, () => ({ id: randomUUID(), source, type: 'fault', payload }));
          ids.push(...records.map((r) => r.id));
          await post({ records });
          if (n === 20) await post({ id: oversizeId, source, type: 'fault', payload: { blob: 'y'.repeat(1_200_000) } });
        },
      );
    } finally {
      await services('up', 'kafka');
      kafkaBackAt = performance.now();
    }
    expect(ids).toHaveLength(40_000);

    await waitForTopic(topic, DELIVERY_BUDGET_MS);
    const delivered = await consumeRecordIds(topic, new Set(ids), DELIVERY_BUDGET_MS * 2);
    const drainedAfterMs = performance.now() - kafkaBackAt;
    const lost = missing(ids, delivered.seen);
    console.log(
      `fault kafka-down backlog: ${ids.length} acknowledged, ${delivered.seen.size} found, ${lost.length} lost, ` +
        `${delivered.messages} messages on the topic; all on Kafka ${(drainedAfterMs / 1000).toFixed(1)} s after it was back`,
    );
    expect(lost).toEqual([]);
    // Exactly the acknowledged events: no duplicates, and not the oversize one.
    expect(delivered.messages).toBe(ids.length);

    const db = databaseAt(database.url, { poolMax: 1, applicationName: 'fault-tests' });
    try {
      await eventually('the outbox to empty', 10_000, async () => {
        const left = await db.raw('SELECT count(*)::int AS n FROM outbox');
        return (left.rows as Array<{ n: number }>)[0]?.n === 0;
      });
      const dead = await db.raw('SELECT record_id::text AS id, bytes FROM outbox_dead_letter');
      const rows = dead.rows as Array<{ id: string; bytes: number }>;
      expect(rows.map((r) => r.id)).toEqual([oversizeId]);
      expect(rows[0]?.bytes).toBeGreaterThan(1_048_588);
      const scraped = await scrapeMetrics(ingest?.url ?? '');
      expect(scraped).toMatch(/^data_service_events_dead_lettered_total\{[^}]*\} 1$/m);
    } finally {
      await db.destroy();
    }
  } finally {
    await ingest?.proc.kill();
    await database.drop();
  }
}, 300_000);
