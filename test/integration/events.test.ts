/**
 * Record events on the real Kafka: the transactional outbox and its relay. Runs on a private test database, so
 * that no other test's relay takes our outbox rows (or ours theirs), and on a private topic.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Ajv2020 from 'ajv/dist/2020.js';
import { CloudEvent, Kafka as CloudEventsKafka, type KafkaMessage } from 'cloudevents';
import { type Admin, type Consumer, type IHeaders, Kafka, logLevel } from 'kafkajs';
import { RECORD_EVENT_SCHEMA_FILE } from '#lib/api';
import { createOutboxRepository, type Database } from '#lib/db';
import {
  createKafkaPublisher,
  createOutboxRelay,
  type OutboxRelay,
  RECORD_CREATED_TYPE,
  RECORD_EVENT_SOURCE,
  recordEventSchema,
  toRecordMessage,
} from '#lib/events';
import { createSilentLogger } from '#lib/observability';
import { storedRecordSchema } from '#lib/records';
import {
  getJson,
  postJson,
  startTestApp,
  TEST_RELAY_CONFIG,
  type TestApp,
  testKafkaConfig,
  uniqueSource,
} from '../support/app.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';

const RUN = randomUUID().slice(0, 8);
const TOPIC = `test.events.${RUN}`;
const GROUP = `test-events-${RUN}`;
/** After the expected messages arrived, how long to keep listening for unexpected ones. */
const SETTLE_MS = 750;

interface Received {
  readonly key: string;
  readonly value: string;
  readonly headers: Record<string, string>;
  readonly partition: number;
}

function defined<T>(value: T | undefined, what = 'value'): T {
  if (value === undefined) throw new Error(`${what} is undefined`);
  return value;
}

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const headerText = (headers: IHeaders | undefined): Record<string, string> =>
  Object.fromEntries(
    Object.entries(headers ?? {}).map(([name, value]) => [
      name,
      Array.isArray(value) ? value.join(',') : String(value),
    ]),
  );

const record = (source: string, extra: Record<string, unknown> = {}) => ({
  source,
  type: 'reading',
  payload: { celsius: 21.5, nested: { ok: true }, list: [1, 'two'] },
  ...extra,
});

const idsOf = (json: Record<string, unknown>): string[] => (json.records as Array<{ id: string }>).map((r) => r.id);

let databaseUrl: string;
let database: PrivateDatabase | undefined;
let admin: Admin;
let consumer: Consumer;
/** Every message consumed from the topic, by key. */
const received = new Map<string, Received[]>();
const countOf = (id: string) => received.get(id)?.length ?? 0;
const allArrived = (ids: readonly string[]) => ids.every((id) => countOf(id) > 0);

/** Outbox events (and how many distinct ids they carry) of any of these record ids. */
async function outboxHolding(db: Database, ids: readonly string[]): Promise<{ rows: number; ids: number }> {
  const result = await db.raw(
    `SELECT count(*)::int AS rows, count(DISTINCT record_id)::int AS ids
     FROM outbox WHERE record_id = ANY(?::uuid[])`,
    [[...ids]],
  );
  const row = (result.rows as Array<{ rows: number; ids: number }>)[0];
  return { rows: row?.rows ?? 0, ids: row?.ids ?? 0 };
}

beforeAll(async () => {
  database = await createPrivateDatabase('ev');
  databaseUrl = database.url;

  // The topic as the publisher would create it, and a consumer reading it from the beginning.
  const kafka = new Kafka({
    clientId: 'events-test',
    brokers: [...testKafkaConfig(TOPIC).brokers],
    logLevel: logLevel.NOTHING,
  });
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: TOPIC, numPartitions: 3, replicationFactor: 1 }],
  });
  consumer = kafka.consumer({ groupId: GROUP, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      const key = message.key?.toString() ?? '';
      const list = received.get(key) ?? [];
      list.push({ key, value: message.value?.toString() ?? '', headers: headerText(message.headers), partition });
      received.set(key, list);
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

describe('with the relay running', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ databaseUrl, kafka: { topic: TOPIC } });
  });
  afterAll(async () => {
    await app.close();
  });

  it('publishes one message per record: key = id, typed headers, and the record exactly as GET answers it', async () => {
    const posted = await postJson(app, record(uniqueSource()));
    expect(posted.status).toBe(201);
    const [id = ''] = idsOf(posted.json);
    await waitFor(() => allArrived([id]), 10_000, 'the event');
    await sleep(SETTLE_MS);
    expect(countOf(id)).toBe(1);

    const message = defined(received.get(id)?.[0]);
    expect(message.key).toBe(id);
    expect(message.headers).toEqual({
      ce_specversion: '1.0',
      ce_id: id,
      ce_source: RECORD_EVENT_SOURCE,
      ce_type: RECORD_CREATED_TYPE,
      ce_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
      'content-type': 'application/json',
      'event-type': 'record.created',
      'event-version': '1',
    });
    const read = await getJson(`${app.queryUrl}/data/${id}`);
    expect(read.status).toBe(200);
    // Row → record → event: the event's record is exactly what GET answers, and the event is what the
    // published schema (OpenAPI components.schemas.RecordCreatedEvent) says.
    expect(JSON.parse(message.value)).toEqual({ version: 1, event: 'record.created', record: read.json });
    expect(recordEventSchema.validate(JSON.parse(message.value), { convert: false }).error).toBeUndefined();
    expect(storedRecordSchema.validate(read.json, { convert: false }).error).toBeUndefined();
    expect(await outboxHolding(app.db, [id])).toEqual({ rows: 0, ids: 0 });
  }, 20_000);

  it('publishes every record of a batch once, and nothing for duplicates', async () => {
    const source = uniqueSource();
    const known = randomUUID();
    const first = await postJson(app, record(source, { id: known }));
    expect(first.json.records).toEqual([{ id: known, status: 'created' }]);

    const fresh = [randomUUID(), randomUUID(), randomUUID()];
    const batch = await postJson(app, {
      records: [
        record(source, { id: fresh[0] }),
        record(source, { id: known }),
        ...fresh.slice(1).map((id) => record(source, { id })),
      ],
    });
    expect(batch.status).toBe(201);
    expect((batch.json.records as Array<{ status: string }>).map((r) => r.status)).toEqual([
      'created',
      'duplicate',
      'created',
      'created',
    ]);
    const again = await postJson(app, record(source, { id: known }));
    expect(again.json.records).toEqual([{ id: known, status: 'duplicate' }]);
    expect((await postJson(app, record(source, { id: known, payload: { other: true } }))).status).toBe(409);

    // Written after the duplicates: once it is through, so is anything they could have produced.
    const [sentinel = ''] = idsOf((await postJson(app, record(source))).json);
    await waitFor(() => allArrived([known, ...fresh, sentinel]), 10_000, 'the batch events');
    await sleep(SETTLE_MS);
    for (const id of [known, ...fresh, sentinel]) expect(countOf(id)).toBe(1);
    // The refused write's different payload never went out.
    expect(JSON.parse(defined(received.get(known)?.[0]).value).record.payload).toEqual(record(source).payload);
    expect(await outboxHolding(app.db, [known, ...fresh, sentinel])).toEqual({ rows: 0, ids: 0 });
  }, 20_000);

  it('two relays at once publish each of 200 records exactly once', async () => {
    const logger = createSilentLogger();
    const publisher = createKafkaPublisher({ config: defined(app.kafkaConfig), logger });
    const second: OutboxRelay = createOutboxRelay({
      store: createOutboxRepository(app.db),
      publisher,
      logger,
      ...TEST_RELAY_CONFIG,
    });
    const firstRelay = defined(app.relay);
    const before = firstRelay.status().eventsPublished;
    second.start();
    try {
      const source = uniqueSource();
      const ids: string[] = [];
      // 200 writes, 20 at a time: 200 outbox rows for the two relays to compete for.
      for (let wave = 0; wave < 10; wave++) {
        const posted = await Promise.all(Array.from({ length: 20 }, () => postJson(app, record(source))));
        for (const p of posted) {
          expect(p.status).toBe(201);
          ids.push(...idsOf(p.json));
        }
      }
      expect(new Set(ids).size).toBe(200);
      await waitFor(() => allArrived(ids), 20_000, 'all 200 events');
      await sleep(SETTLE_MS);
      const counts = ids.map(countOf);
      expect(counts.filter((c) => c !== 1)).toEqual([]);
      const byFirst = firstRelay.status().eventsPublished - before;
      const bySecond = second.status().eventsPublished;
      console.log(`two relays: ${byFirst} + ${bySecond} events published for 200 records`);
      expect(byFirst + bySecond).toBe(200);
      expect(await outboxHolding(app.db, ids)).toEqual({ rows: 0, ids: 0 });
    } finally {
      await second.stop();
      await publisher.close();
    }
  }, 60_000);
});

describe('the outbox holds events until they are published', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ databaseUrl, kafka: { topic: TOPIC } });
  });
  afterAll(async () => {
    await app.close();
  });

  it('keeps the rows while no relay runs, and a started relay publishes and deletes them', async () => {
    const relay = defined(app.relay);
    await relay.stop();
    const source = uniqueSource();
    const batch = await postJson(app, { records: [record(source), record(source), record(source)] });
    const single = await postJson(app, record(source));
    expect([batch.status, single.status]).toEqual([201, 201]);
    const ids = [...idsOf(batch.json), ...idsOf(single.json)];

    // One row per committed write, carrying its records.
    expect(await outboxHolding(app.db, ids)).toEqual({ rows: 4, ids: 4 });
    await sleep(SETTLE_MS);
    expect(ids.map(countOf)).toEqual([0, 0, 0, 0]);
    expect(await outboxHolding(app.db, ids)).toEqual({ rows: 4, ids: 4 });

    relay.start();
    await waitFor(() => allArrived(ids), 10_000, 'the held events');
    await waitFor(async () => (await outboxHolding(app.db, ids)).rows === 0, 5_000, 'the rows to go');
    await sleep(SETTLE_MS);
    expect(ids.map(countOf)).toEqual([1, 1, 1, 1]);
  }, 30_000);
});

/** What an independent reader makes of a message: the CloudEvents SDK's Kafka binding, then its own validation. */
function toCloudEvent(message: Received): CloudEvent<unknown> {
  const kafkaMessage: KafkaMessage<string> = {
    key: message.key,
    value: message.value,
    headers: message.headers,
    body: message.value,
  };
  const event = CloudEventsKafka.toEvent<unknown>(kafkaMessage);
  if (!(event instanceof CloudEvent)) throw new Error('expected one binary-mode CloudEvent');
  // The binding builds events unchecked (strict: false); validate() applies the CloudEvents 1.0 rules.
  expect(event.validate()).toBe(true);
  return event;
}

/** The same instant at microsecond precision: received_at drops trailing zeros to milliseconds, ce_time does not. */
const micros = (rfc3339: string) => rfc3339.replace(/\.(\d{3})Z$/, '.$1000Z');

describe('as CloudEvents (binary content mode, read by the cloudevents SDK)', () => {
  let app: TestApp;
  const validateData = new Ajv2020.default({ strict: false, validateFormats: false }).compile(
    JSON.parse(readFileSync(new URL(`../../${RECORD_EVENT_SCHEMA_FILE}`, import.meta.url), 'utf8')) as object,
  );
  beforeAll(async () => {
    app = await startTestApp({ databaseUrl, kafka: { topic: TOPIC } });
  });
  afterAll(async () => {
    await app.close();
  });

  it('carries every required attribute, time = received_at, and data valid against the published schema', async () => {
    const source = uniqueSource();
    const posted = await postJson(app, { records: [record(source), record(source, { payload: { é: '✓', n: null } })] });
    expect(posted.status).toBe(201);
    const ids = idsOf(posted.json);
    await waitFor(() => allArrived(ids), 10_000, 'the events');
    for (const id of ids) {
      const message = defined(received.get(id)?.[0]);
      const event = toCloudEvent(message);
      const read = await getJson(`${app.queryUrl}/data/${id}`);
      expect(read.status).toBe(200);
      const stored = read.json as { received_at: string };
      expect({
        specversion: event.specversion,
        id: event.id,
        source: event.source,
        type: event.type,
        datacontenttype: event.datacontenttype,
        time: event.time,
        partitionkey: (event as CloudEvent<unknown> & { partitionkey?: unknown }).partitionkey,
      }).toEqual({
        specversion: '1.0',
        id,
        source: RECORD_EVENT_SOURCE,
        type: 'dev.data-service.record.created.v1',
        datacontenttype: 'application/json',
        time: new Date(stored.received_at).toISOString(),
        partitionkey: id,
      });
      // The SDK keeps milliseconds; the header itself holds the commit time to the microsecond.
      expect(message.headers.ce_time).toBe(micros(stored.received_at));
      // The SDK parses application/json data; it is the RecordCreatedEvent, whose record is what GET answers.
      expect(event.data).toEqual({ version: 1, event: 'record.created', record: read.json });
      expect(validateData(event.data)).toBe(true);
      expect(validateData({ ...(event.data as object), version: 2 })).toBe(false);
    }
  }, 20_000);

  it('a re-delivered event is the same CloudEvent: id, time and data unchanged, so consumers can dedupe', async () => {
    const relay = defined(app.relay);
    await relay.stop();
    const [id = ''] = idsOf((await postJson(app, record(uniqueSource()))).json);
    const publisher = createKafkaPublisher({ config: defined(app.kafkaConfig), logger: createSilentLogger() });
    try {
      // A relay that dies after the broker acknowledged and before its DELETE commits: the row is released and
      // published again by the next relay (at least once).
      await expect(
        createOutboxRepository(app.db).relayBatch({ rows: 100, bytes: 1 << 20 }, async (entries) => {
          await publisher.publish(entries.map(toRecordMessage));
          throw new Error('relay died before its commit');
        }),
      ).rejects.toThrow();
    } finally {
      await publisher.close();
    }
    await waitFor(() => countOf(id) === 1, 10_000, 'the first delivery');
    expect((await outboxHolding(app.db, [id])).rows).toBe(1);
    relay.start();
    await waitFor(() => countOf(id) === 2, 10_000, 'the re-delivery');
    const [first, second] = defined(received.get(id)).map(toCloudEvent) as [CloudEvent<unknown>, CloudEvent<unknown>];
    const attributes = (e: CloudEvent<unknown>) => ({ id: e.id, source: e.source, type: e.type, time: e.time });
    expect(attributes(second)).toEqual(attributes(first));
    expect(second.id).toBe(id);
    expect(second.data).toEqual(first.data);
  }, 30_000);
});

describe('with the broker unreachable', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ databaseUrl, kafka: { topic: TOPIC, brokers: ['127.0.0.1:1'] } });
  });
  afterAll(async () => {
    await app.close();
  }, 20_000);

  it('answers 201 as fast as ever, keeps the events in the outbox, reports the broker down; the backlog drains later', async () => {
    const relay = defined(app.relay);
    const source = uniqueSource();
    const ids: string[] = [];
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      const posted = await postJson(app, record(source));
      latencies.push(performance.now() - start);
      expect(posted.status).toBe(201);
      ids.push(...idsOf(posted.json));
    }
    latencies.sort((a, b) => a - b);
    const median = latencies[10] ?? Number.POSITIVE_INFINITY;
    const max = latencies.at(-1) ?? Number.POSITIVE_INFINITY;
    console.log(`POST latency with the broker down: median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
    expect(median).toBeLessThan(100);
    expect(max).toBeLessThan(1_000);

    await waitFor(() => relay.status().publishErrors > 0, 15_000, 'a failed publish');
    expect(relay.status().brokerReachable).toBe(false);
    expect(relay.status().eventsPublished).toBe(0);
    expect(await outboxHolding(app.db, ids)).toEqual({ rows: 20, ids: 20 });
    expect(ids.filter((id) => countOf(id) > 0)).toEqual([]);

    // The broker "returns": a relay that reaches it drains the backlog, each event once.
    const logger = createSilentLogger();
    const publisher = createKafkaPublisher({ config: testKafkaConfig(TOPIC), logger });
    const healthy = createOutboxRelay({
      store: createOutboxRepository(app.db),
      publisher,
      logger,
      ...TEST_RELAY_CONFIG,
    });
    healthy.start();
    try {
      await waitFor(() => allArrived(ids), 15_000, 'the backlog');
      await waitFor(async () => (await outboxHolding(app.db, ids)).rows === 0, 5_000, 'the rows to go');
      await sleep(SETTLE_MS);
      expect(ids.filter((id) => countOf(id) !== 1)).toEqual([]);
      expect(healthy.status().brokerReachable).toBe(true);
    } finally {
      await healthy.stop();
      await publisher.close();
    }
  }, 60_000);
});
