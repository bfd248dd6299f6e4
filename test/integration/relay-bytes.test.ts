/**
 * Issue 12, items 1 and 2, on the real broker and PostgreSQL: the relay bounds what it claims and sends by bytes.
 *
 * - A backlog built while Kafka is unreachable, of 1,000-record batches whose events total far above the broker's
 *   1 MiB `message.max.bytes`, with one event that alone exceeds it, drains completely once a relay reaches Kafka:
 *   the oversize event lands in `outbox_dead_letter`, every other event is on the topic exactly once (ids
 *   compared), and no send was refused as too large (the size plan never undershoots the broker).
 * - Several events of one record id leave in outbox order, on one partition, through many small sends.
 * - The store's claim stops at its byte bound (or row bound) in SQL, and a publish that failed half-way deletes what
 *   the broker acknowledged and files the dead letters before it releases the rest.
 * - The topic's durability settings are created and verified against the real (single) broker: it says what it
 *   would require at replication ≥ 3 and does not fail.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type Admin, ConfigResourceTypes, type Consumer, Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { createOutboxRepository, type Database } from '#lib/db';
import {
  createKafkaClient,
  createKafkaPublisher,
  createOutboxRelay,
  type OutboxEntry,
  PartialRelayError,
  prepareTopic,
} from '#lib/events';
import { createSilentLogger } from '#lib/observability';
import { postJson, startTestApp, testConfig, testKafkaConfig, uniqueSource } from '../support/app.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';

const RUN = randomUUID().slice(0, 8);
const TOPIC = `test.relay-bytes.${RUN}`;
const GROUP = `test-relay-bytes-${RUN}`;
const BATCHES = 10;
const PER_BATCH = 1_000;
/** ≈ 900 bytes of payload per record, as in the issue. */
const PAYLOAD = { text: 'x'.repeat(880), n: 1 };
/** Kafka's default message.max.bytes, which the test broker keeps. */
const BROKER_LIMIT = 1_048_588;

interface Received {
  readonly partition: number;
  readonly value: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

let database: PrivateDatabase | undefined;
let admin: Admin;
let consumer: Consumer;
const received = new Map<string, Received[]>();
const countOf = (id: string) => received.get(id)?.length ?? 0;

async function outboxRows(db: Database): Promise<number> {
  const result = await db.raw('SELECT count(*)::int AS n FROM outbox');
  return (result.rows as Array<{ n: number }>)[0]?.n ?? 0;
}

beforeAll(async () => {
  database = await createPrivateDatabase('rb');
  const kafka = new Kafka({
    clientId: 'relay-bytes-test',
    brokers: [...testKafkaConfig(TOPIC).brokers],
    logLevel: logLevel.NOTHING,
  });
  admin = kafka.admin();
  await admin.connect();
  // The topic as the relay creates it (prepareTopic), so that the consumer can subscribe before the backlog drains.
  await prepareTopic(admin, testKafkaConfig(TOPIC));
  consumer = kafka.consumer({ groupId: GROUP, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        const key = message.key?.toString() ?? '';
        const list = received.get(key) ?? [];
        list.push({ partition: batch.partition, value: message.value?.toString() ?? '' });
        received.set(key, list);
      }
    },
  });
}, 60_000);

afterAll(async () => {
  await consumer?.disconnect();
  if (admin) {
    await admin.deleteTopics({ topics: [TOPIC], timeout: 10_000 }).catch(() => undefined);
    await admin.deleteGroups([GROUP]).catch(() => undefined);
    await admin.disconnect();
  }
  await database?.drop();
}, 30_000);

describe('a backlog far above the broker limit, built while Kafka is unreachable', () => {
  it('drains completely: the oversize event is dead-lettered, every other event is on the topic once', async () => {
    const url = database?.url ?? '';
    // Ingest with its relay pointed at a closed port: every send fails and the events wait in the outbox.
    const app = await startTestApp({
      databaseUrl: url,
      bodyLimitBytes: 3 * 1024 * 1024,
      limits: { payloadMaxBytes: 2 * 1024 * 1024 },
      kafka: { topic: TOPIC, brokers: ['127.0.0.1:1'] },
    });
    const source = uniqueSource('relay-bytes');
    const ids: string[] = [];
    let oversizeId = '';
    try {
      const postBatch = async () => {
        const records = Array.from({ length: PER_BATCH }, () => ({
          id: randomUUID(),
          source,
          type: 'reading',
          payload: PAYLOAD,
        }));
        const posted = await postJson(app, { records });
        expect(posted.status).toBe(201);
        ids.push(...records.map((r) => r.id));
      };
      for (let i = 0; i < BATCHES / 2; i++) await postBatch();
      // One event that alone is larger than the broker takes, in the middle of the backlog.
      oversizeId = randomUUID();
      const big = await postJson(app, {
        id: oversizeId,
        source,
        type: 'reading',
        payload: { blob: 'y'.repeat(1_200_000) },
      });
      expect(big.status).toBe(201);
      for (let i = BATCHES / 2; i < BATCHES; i++) await postBatch();
      expect(await outboxRows(app.db)).toBe(BATCHES * PER_BATCH + 1);
      const bytes = await app.db.raw('SELECT sum(octet_length(event))::bigint AS b FROM outbox');
      const backlogBytes = Number((bytes.rows as Array<{ b: string }>)[0]?.b);
      // Every 1,000-record batch alone is above the limit, and the whole far above it.
      expect(backlogBytes / (BATCHES * PER_BATCH + 1)).toBeGreaterThan(1_000);
      expect(backlogBytes).toBeGreaterThan(10 * BROKER_LIMIT);
      await app.relay?.stop();
      expect(app.relay?.status().publishErrors).toBeGreaterThan(0);

      // Kafka "returns": a relay with the deployed defaults reaches it.
      const logger = createSilentLogger();
      const publisher = createKafkaPublisher({ config: testKafkaConfig(TOPIC), logger });
      const { enabled: _, ...defaults } = testConfig().relay;
      const relay = createOutboxRelay({ store: createOutboxRepository(app.db), publisher, logger, ...defaults });
      const started = performance.now();
      relay.start();
      try {
        await waitFor(() => ids.every((id) => countOf(id) > 0), 120_000, 'every event on the topic');
        await waitFor(async () => (await outboxRows(app.db)) === 0, 10_000, 'the outbox to empty');
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `relay-bytes: ${ids.length} events (${(backlogBytes / 1048576).toFixed(1)} MiB) drained in ${seconds.toFixed(1)} s ` +
            `= ${Math.round(ids.length / seconds)} events/s with RELAY_BATCH_SIZE=${defaults.batchSize}, ` +
            `RELAY_BATCH_BYTES=${defaults.batchBytes}; batch limit ${publisher.status().batchLimitBytes} bytes`,
        );
        await sleep(750); // anything unexpected (duplicates, the oversize event) would arrive by now
        expect(ids.filter((id) => countOf(id) !== 1)).toEqual([]);
        expect(countOf(oversizeId)).toBe(0);
        expect(relay.status()).toMatchObject({ eventsPublished: ids.length, eventsDeadLettered: 1 });
        // The plan never undershot the broker: no send was refused as too large.
        expect(publisher.status()).toEqual({ batchLimitBytes: BROKER_LIMIT, tooLargeSplits: 0 });
        const dead = await app.db.raw('SELECT record_id::text AS id, bytes, reason, event FROM outbox_dead_letter');
        const rows = dead.rows as Array<{ id: string; bytes: number; reason: string; event: string }>;
        expect(rows.map((r) => r.id)).toEqual([oversizeId]);
        expect(rows[0]?.bytes).toBeGreaterThan(BROKER_LIMIT);
        expect(rows[0]?.reason).toContain(`limit of ${BROKER_LIMIT} bytes`);
        expect(JSON.parse(rows[0]?.event ?? '{}').record.id).toBe(oversizeId);
        expect(await createOutboxRepository(app.db).backlog()).toMatchObject({ rows: 0, deadLetters: 1 });
      } finally {
        await relay.stop();
        await publisher.close();
      }
    } finally {
      await app.close();
    }
  }, 240_000);
});

describe('events of one record id', () => {
  it('leave in outbox order on one partition through many small sends; one above the cap is dead-lettered', async () => {
    const app = await startTestApp({ databaseUrl: database?.url ?? '', kafka: { topic: TOPIC, startRelay: false } });
    try {
      const keys = Array.from({ length: 100 }, () => randomUUID());
      const alone = randomUUID();
      // Five events per id, interleaved (round-robin over ids), of varied sizes: written as the outbox holds them.
      await app.db.raw(
        `INSERT INTO outbox (record_id, event)
         SELECT (?::uuid[])[k], json_build_object('seq', s, 'pad', repeat('p', 100 + (k * 37 + s * 101) % 3000))::text
         FROM generate_series(0, 4) AS s, generate_series(1, ?) AS k
         ORDER BY s, k`,
        [keys, keys.length],
      );
      await app.db.raw(`INSERT INTO outbox (record_id, event) VALUES (?, repeat('z', 20000))`, [alone]);
      const logger = createSilentLogger();
      const publisher = createKafkaPublisher({ config: testKafkaConfig(TOPIC), logger });
      const relay = createOutboxRelay({
        store: createOutboxRepository(app.db),
        publisher,
        logger,
        batchSize: 500,
        batchBytes: 64 * 1024,
        maxRequestBytes: 16 * 1024,
        pollIntervalMs: 50,
        maxBackoffMs: 1_000,
      });
      relay.start();
      try {
        await waitFor(() => keys.every((k) => countOf(k) === 5), 60_000, 'all 500 events');
        await waitFor(async () => (await outboxRows(app.db)) === 0, 10_000, 'the outbox to empty');
        await sleep(500);
        for (const key of keys) {
          const events = received.get(key) ?? [];
          expect({ key, partitions: new Set(events.map((e) => e.partition)).size }).toEqual({ key, partitions: 1 });
          expect({ key, seq: events.map((e) => JSON.parse(e.value).seq) }).toEqual({ key, seq: [0, 1, 2, 3, 4] });
        }
        expect(countOf(alone)).toBe(0);
        expect(relay.status()).toMatchObject({ eventsPublished: 500, eventsDeadLettered: 1 });
        expect(publisher.status()).toEqual({ batchLimitBytes: 16 * 1024, tooLargeSplits: 0 });
        const dead = await app.db.raw('SELECT record_id::text AS id FROM outbox_dead_letter WHERE record_id = ?', [
          alone,
        ]);
        expect(dead.rows).toEqual([{ id: alone }]);
      } finally {
        await relay.stop();
        await publisher.close();
      }
    } finally {
      await app.close();
    }
  }, 120_000);
});

describe('the outbox store', () => {
  it('claims by rows and by bytes, says when a limit stopped it, and settles a half-failed publish', async () => {
    const app = await startTestApp({ databaseUrl: database?.url ?? '' });
    try {
      const store = createOutboxRepository(app.db);
      const recordId = randomUUID();
      // Ten events of exactly 1,000 bytes each, and one of 9,000.
      await app.db.raw(
        `INSERT INTO outbox (record_id, event) SELECT ?, repeat('e', CASE WHEN g = 11 THEN 9000 ELSE 1000 END)
         FROM generate_series(1, 11) AS g ORDER BY g`,
        [recordId],
      );
      const seen: OutboxEntry[][] = [];
      const ackAll = async (entries: readonly OutboxEntry[]) => {
        seen.push([...entries]);
        return { acknowledged: entries.map((e) => e.id), deadLetters: [] };
      };
      // The claim holds rows while the bytes before them are under the bound: 0, 1,000, 2,000, 3,000 < 3,500.
      expect(await store.relayBatch({ rows: 100, bytes: 3_500 }, ackAll)).toEqual({
        claimed: 4,
        full: true,
        published: 4,
        deadLettered: 0,
      });
      expect(await store.relayBatch({ rows: 2, bytes: 1_000_000 }, ackAll)).toMatchObject({ claimed: 2, full: true });
      // A half-failed publish: two acknowledged, one too large, the rest released for the next round.
      const failure = await store
        .relayBatch({ rows: 3, bytes: 1_000_000 }, async (entries) => {
          const [a, b, c] = entries as [OutboxEntry, OutboxEntry, OutboxEntry];
          throw new PartialRelayError(
            { acknowledged: [a.id, b.id], deadLetters: [{ entry: c, bytes: 1_100, reason: 'test' }] },
            new Error('broker lost'),
          );
        })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(PartialRelayError);
      expect(await outboxRows(app.db)).toBe(11 - 4 - 2 - 3);
      const dead = await app.db.raw('SELECT bytes, reason FROM outbox_dead_letter WHERE record_id = ?', [recordId]);
      expect(dead.rows).toEqual([{ bytes: 1_100, reason: 'test' }]);
      // A rejection releases everything; an event alone above the bound is still claimed (alone).
      await expect(
        store.relayBatch({ rows: 100, bytes: 500 }, async () => Promise.reject(new Error('down'))),
      ).rejects.toThrow('down');
      expect(await store.relayBatch({ rows: 100, bytes: 500 }, ackAll)).toMatchObject({ claimed: 1, full: true });
      expect(seen.at(-1)?.map((e) => e.event.length)).toEqual([1_000]);
      // The last round reaches the end of the outbox: not full.
      expect(await store.relayBatch({ rows: 100, bytes: 1_000_000 }, ackAll)).toEqual({
        claimed: 1,
        full: false,
        published: 1,
        deadLettered: 0,
      });
      expect(seen.at(-1)?.map((e) => e.event.length)).toEqual([9_000]);
      expect(await store.backlog()).toMatchObject({ rows: 0 });
    } finally {
      await app.close();
    }
  }, 30_000);
});

describe('topic durability on the real single broker', () => {
  it('creates the topic with the required settings, reads them back, and says what replication 3 would need', async () => {
    const topic = `test.durability.${RUN}`;
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const kafkaAdmin = createKafkaClient({ config: testKafkaConfig(topic), logger }).admin();
    await kafkaAdmin.connect();
    try {
      const first = await prepareTopic(kafkaAdmin, testKafkaConfig(topic), logger);
      expect(first.created).toBe(true);
      expect(first.maxMessageBytes).toBe(BROKER_LIMIT);
      expect(first.durability).toEqual({ replicationFactor: 1, minInsyncReplicas: 1, uncleanLeaderElection: false });
      expect(first.findings).toEqual([
        {
          level: 'info',
          message: expect.stringContaining(
            'with replication ≥ 3 the relay requires min.insync.replicas=2 and unclean.leader.election.enable=false',
          ),
        },
      ]);
      expect(lines.map((l) => JSON.parse(l).msg)).toEqual([first.findings[0]?.message]);
      // unclean.leader.election.enable was set on the topic itself, not inherited.
      const described = await kafkaAdmin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['unclean.leader.election.enable'] }],
      });
      expect(described.resources[0]?.configEntries[0]).toMatchObject({ configValue: 'false', isDefault: false });

      // An existing topic is verified, not changed: a weak setting is reported as a warning.
      await kafkaAdmin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: topic,
            configEntries: [{ name: 'unclean.leader.election.enable', value: 'true' }],
          },
        ],
      });
      const again = await prepareTopic(kafkaAdmin, testKafkaConfig(topic), logger);
      expect(again.created).toBe(false);
      expect(again.findings.map((f) => f.level)).toEqual(['info', 'warn']);
      expect(again.findings[1]?.message).toContain('unclean.leader.election.enable=true');
    } finally {
      await kafkaAdmin.deleteTopics({ topics: [topic], timeout: 10_000 }).catch(() => undefined);
      await kafkaAdmin.disconnect();
    }
  }, 60_000);
});
