/**
 * A request carrying a W3C traceparent produces spans under that trace from the HTTP server through
 * PostgreSQL to the Kafka publish, and the Kafka message carries the trace on to consumers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaConfig } from '#lib/config';
import type { Database } from '#lib/db';
import { createKafkaClient, createKafkaPublisher, type EventPublisher, ensureTopic } from '#lib/events';
import { createSilentLogger, startTracing, type Tracing } from '#lib/observability';
import { createRuntimeServer, type RuntimeServer } from '#lib/runtime';
import { createIngestApp, type IngestApp } from '../../functions/ingest/app.ts';
import { testConfig } from '../support/app.ts';
import { databaseAt } from '../support/database.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:29092').split(',');
const topic = `test.tracing.${randomUUID().slice(0, 8)}`;
const kafkaConfig: KafkaConfig = {
  brokers,
  clientId: 'tracing-test',
  topic,
  topicPartitions: 1,
  topicReplicationFactor: 1,
  ssl: false,
  sasl: undefined,
  connectionTimeoutMs: 1_000,
  requestTimeoutMs: 5_000,
};

let db: Database;
let database: PrivateDatabase;
let tracing: Tracing;
let server: RuntimeServer;
let app: IngestApp;
let publisher: EventPublisher;
let url: string;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  // Trusting the caller's sampled flag (OTEL_TRUST_INCOMING_SAMPLING=1); the last test turns it off.
  tracing = startTracing({ serviceName: 'ingest', revision: 'test', sampleRatio: 0, trustIncoming: true, exporter });
  // Its own database: a relay of another test on the shared one would publish this test's event elsewhere.
  database = await createPrivateDatabase('trace');
  db = databaseAt(database.url, { poolMax: 4 });
  const logger = createSilentLogger();
  // The topic exists before the consumer subscribes (the publisher would only create it at its first send).
  await ensureTopic(createKafkaClient({ config: kafkaConfig, logger }), kafkaConfig);
  publisher = createKafkaPublisher({ config: kafkaConfig, logger });
  // The ingest function as main.ts builds it (group commit and relay included), on this test's database.
  const config = testConfig({
    DATABASE_URL: database.url,
    KAFKA_BROKERS: brokers.join(','),
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: '1',
    RELAY_POLL_INTERVAL_MS: '50',
    RELAY_MAX_BACKOFF_MS: '500',
  });
  app = createIngestApp(config, { db, publisher }, logger);
  await app.start({ maintenance: false });
  server = createRuntimeServer({ ...config.http, logger, functionName: 'ingest', handler: app.handler });
  url = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
});

afterAll(async () => {
  await server.drain(1_000);
  await app.close();
  await publisher.close();
  await tracing.shutdown();
  await db.destroy();
  await database.drop();
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

describe('tracing', () => {
  it('continues the caller trace through the server, PostgreSQL and the Kafka publish, into the message headers', async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentSpan = randomBytes(8).toString('hex');
    const id = randomUUID();
    const response = await fetch(`${url}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${parentSpan}-01` },
      body: JSON.stringify({ id, source: 'tracing.test', type: 'reading', payload: { n: 1 } }),
    });
    expect(response.status).toBe(201);

    const consumer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({
      groupId: `tracing-${randomUUID()}`,
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const headers = await new Promise<Record<string, string>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message within 30 s')), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          if (message.key?.toString() !== id) return;
          clearTimeout(timer);
          resolve(Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])));
        },
      });
    });
    await consumer.disconnect();

    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const names = spans.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['POST /data', 'postgresql insert records', 'records publish']));
    const serverSpan = spans.find((s) => s.name === 'POST /data');
    expect(serverSpan?.parentSpanContext?.spanId).toBe(parentSpan);
    const dbSpan = spans.find((s) => s.name === 'postgresql insert records');
    expect(dbSpan?.spanContext().traceId).toBe(traceId);
    expect(headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const producer = spans.find((s) => s.name === 'records publish');
    expect(headers.traceparent?.split('-')[2]).toBe(producer?.spanContext().spanId);
  }, 60_000);

  it('samples nothing of its own at ratio 0 when the caller did not sample', async () => {
    exporter.reset();
    const traceId = randomBytes(16).toString('hex');
    const response = await fetch(`${url}/data`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-00`,
      },
      body: JSON.stringify({ source: 'tracing.test', type: 'reading', payload: { n: 2 } }),
    });
    expect(response.status).toBe(201);
    expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)).toEqual([]);
  });

  it('does not let a caller force sampling unless told to trust it (the default)', async () => {
    await tracing.shutdown();
    tracing = startTracing({ serviceName: 'ingest', revision: 'test', sampleRatio: 0, exporter });
    exporter.reset();
    const traceId = randomBytes(16).toString('hex');
    const response = await fetch(`${url}/data`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
      },
      body: JSON.stringify({ source: 'tracing.test', type: 'reading', payload: { n: 3 } }),
    });
    expect(response.status).toBe(201);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});
