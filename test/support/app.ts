/**
 * Both functions wired exactly as their main.ts does, on real PostgreSQL, each on its own loopback port.
 * Tests talk to them over real HTTP.
 */

import { randomUUID } from 'node:crypto';
import { createRecordCache, createRedisClient, type RedisClient, type RedisRecordCache } from '#lib/cache';
import type { CacheConfig, KafkaConfig, RecordLimits, RedisConfig, RelayConfig } from '#lib/config';
import { createDatabase, createOutboxRepository, createRecordRepository, type Database, databaseNameOf } from '#lib/db';
import { createKafkaPublisher, createOutboxRelay, type EventPublisher, type OutboxRelay } from '#lib/events';
import { buildOpenApiDocument, createResponseTier } from '#lib/http';
import { createSilentLogger } from '#lib/observability';
import { createCursorCodec, createIngestService, createQueryService, createRecordValidator } from '#lib/records';
import { createRuntimeServer, type RuntimeServer } from '#lib/runtime';
import { createIngestHandler } from '../../functions/ingest/handler.ts';
import { createQueryHandler } from '../../functions/query/handler.ts';
import { createTestDatabase, testDatabaseUrl } from './database.ts';

export const TEST_LIMITS: RecordLimits = {
  maxBatchRecords: 1000,
  payloadMaxBytes: 64 * 1024,
  payloadMaxDepth: 16,
  maxPastMs: 7 * 86_400_000,
  maxFutureMs: 24 * 3_600_000,
};

export interface TestApp {
  readonly ingestUrl: string;
  readonly queryUrl: string;
  readonly db: Database;
  readonly ingest: RuntimeServer;
  readonly query: RuntimeServer;
  /** With `redis`: the key prefix every key of this app starts with (unique per app unless given). */
  readonly redisKeyPrefix: string | undefined;
  /** With `redis`: the query function's cache (its stats count the reads); undefined without `redis`. */
  readonly cache: RedisRecordCache | undefined;
  /** With `redis`: the ingest function's own cache (as in production, each function has its own client). */
  readonly ingestCache: RedisRecordCache | undefined;
  /** With `kafka`: the ingest function's outbox relay (started unless `startRelay: false`). */
  readonly relay: OutboxRelay | undefined;
  /** With `kafka`: the Kafka settings the relay publishes with. */
  readonly kafkaConfig: KafkaConfig | undefined;
  close(): Promise<void>;
}

export interface TestRedisOptions {
  /** Defaults to REDIS_URL. */
  readonly url?: string;
  /** Defaults to a fresh `test:<random>:`, so apps never see each other's keys. */
  readonly keyPrefix?: string;
  readonly commandTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly cache?: Partial<CacheConfig>;
}

export interface TestKafkaOptions {
  readonly topic: string;
  /** Defaults to KAFKA_BROKERS. */
  readonly brokers?: readonly string[];
  readonly partitions?: number;
  /** Defaults to true. */
  readonly startRelay?: boolean;
  readonly relay?: Partial<Omit<RelayConfig, 'enabled'>>;
}

export interface TestAppOptions {
  readonly bodyLimitBytes?: number;
  readonly limits?: Partial<RecordLimits>;
  /** Wires a Redis client and record cache into both functions, as their main.ts does. */
  readonly redis?: boolean | TestRedisOptions;
  /** Wires a Kafka publisher and the outbox relay into ingest, as its main.ts does. */
  readonly kafka?: TestKafkaOptions;
  /** Another test database than DATABASE_URL's (its name must contain "test"); migrated by the caller. */
  readonly databaseUrl?: string;
  /** false: no in-process tier of ready responses in query, so every GET by id reaches the cache and store. */
  readonly responseTier?: boolean;
}

export const TEST_CACHE_CONFIG: CacheConfig = {
  recordTtlSeconds: 86_400,
  negativeTtlSeconds: 5,
  listTtlSeconds: 2,
  breakerFailureThreshold: 5,
  breakerResetMs: 5_000,
};

export const TEST_RELAY_CONFIG: Omit<RelayConfig, 'enabled'> = {
  batchSize: 100,
  pollIntervalMs: 100,
  maxBackoffMs: 1_000,
};

/** Redis settings for tests: REDIS_URL, a unique key prefix, the production defaults for timeouts. */
export function testRedisConfig(options: TestRedisOptions = {}): RedisConfig {
  const url = options.url ?? process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set; run the suite with scripts/run-tests.ts (it starts Redis).');
  return {
    url,
    clusterNodes: [],
    tls: false,
    keyPrefix: options.keyPrefix ?? `test:${randomUUID().slice(0, 8)}:`,
    commandTimeoutMs: options.commandTimeoutMs ?? 100,
    connectTimeoutMs: options.connectTimeoutMs ?? 1_000,
  };
}

/** Kafka settings for tests: KAFKA_BROKERS and the given topic. */
export function testKafkaConfig(topic: string, brokers?: readonly string[], partitions = 3): KafkaConfig {
  const fromEnv = process.env.KAFKA_BROKERS;
  const list = brokers ?? fromEnv?.split(',');
  if (list === undefined || list.length === 0) {
    throw new Error('KAFKA_BROKERS is not set; run the suite with scripts/run-tests.ts (it starts Kafka).');
  }
  return {
    brokers: list,
    clientId: 'data-service-tests',
    topic,
    topicPartitions: partitions,
    topicReplicationFactor: 1,
    ssl: false,
    sasl: undefined,
    connectionTimeoutMs: 1_000,
    requestTimeoutMs: 5_000,
  };
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.databaseUrl === undefined ? createTestDatabase() : createOtherTestDatabase(options.databaseUrl);
  const logger = createSilentLogger();
  const limits = { ...TEST_LIMITS, ...options.limits };
  const bodyLimitBytes = options.bodyLimitBytes ?? 1024 * 1024;

  // As functions/*/main.ts: each function has its own Redis client and cache.
  const redisOptions = options.redis === true ? {} : options.redis || undefined;
  const redisConfig = redisOptions && testRedisConfig(redisOptions);
  const cacheConfig = { ...TEST_CACHE_CONFIG, ...redisOptions?.cache };
  const redisClients: RedisClient[] = [];
  const newCache = (): RedisRecordCache | undefined => {
    if (redisConfig === undefined) return undefined;
    const redis = createRedisClient(redisConfig, logger);
    redisClients.push(redis);
    return createRecordCache({ redis, config: cacheConfig, keyPrefix: redisConfig.keyPrefix, logger });
  };
  const ingestCache = newCache();
  const queryCache = newCache();
  // A command sent before the client is ready fails at once (no offline queue) and counts against the breaker:
  // give reachable servers their connect time, so tests start from a warm client (an unreachable one errs at once).
  await Promise.all(redisClients.map((client) => settleConnection(client, redisConfig?.connectTimeoutMs ?? 1_000)));

  // As functions/ingest/main.ts: the relay is created first, and every commit nudges it.
  const kafkaConfig =
    options.kafka && testKafkaConfig(options.kafka.topic, options.kafka.brokers, options.kafka.partitions);
  const publisher: EventPublisher | undefined = kafkaConfig && createKafkaPublisher({ config: kafkaConfig, logger });
  const relay =
    publisher &&
    createOutboxRelay({
      store: createOutboxRepository(db),
      publisher,
      logger,
      ...TEST_RELAY_CONFIG,
      ...options.kafka?.relay,
    });
  if (options.kafka?.startRelay !== false) relay?.start();

  const store = createRecordRepository({
    db,
    idempotencyTtlHours: 24,
    ...(relay && { onCommitted: () => relay.nudge() }),
  });
  const openApi = buildOpenApiDocument(limits);
  const runtime = {
    logger,
    bodyLimitBytes,
    keepAliveTimeoutMs: 95_000,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    readiness: async () => {
      await db.raw('SELECT 1');
      return true;
    },
  };
  const ingest = createRuntimeServer({
    ...runtime,
    functionName: 'ingest',
    handler: createIngestHandler({
      ingest: createIngestService({
        store,
        validator: createRecordValidator(limits),
        ...(ingestCache && { cache: ingestCache }),
      }),
      logger,
      openApi,
      bodyLimitBytes,
    }),
  });
  const query = createRuntimeServer({
    ...runtime,
    functionName: 'query',
    handler: createQueryHandler({
      query: createQueryService({
        store,
        cursors: createCursorCodec('test-cursor-secret-0123456789'),
        ...(queryCache && { cache: queryCache }),
      }),
      logger,
      openApi,
      // As in functions/query/main.ts, unless a test needs every read to reach the cache.
      ...(options.responseTier !== false && { ready: createResponseTier({ maxEntries: 1000, maxBytes: 1 << 24 }) }),
    }),
  });
  const ingestAddress = await ingest.listen(0, '127.0.0.1');
  const queryAddress = await query.listen(0, '127.0.0.1');
  return {
    ingestUrl: `http://127.0.0.1:${ingestAddress.port}`,
    queryUrl: `http://127.0.0.1:${queryAddress.port}`,
    db,
    ingest,
    query,
    redisKeyPrefix: redisConfig?.keyPrefix,
    cache: queryCache,
    ingestCache,
    relay,
    kafkaConfig,
    async close() {
      await Promise.all([ingest.drain(5_000), query.drain(5_000)]);
      // As functions/ingest/main.ts's close.
      await relay?.stop(2_000);
      await publisher?.close();
      ingestCache?.close();
      queryCache?.close();
      for (const redis of redisClients) redis.disconnect();
      await db.destroy();
    },
  };
}

/** Resolves when the client is ready, has failed to connect, or `timeoutMs` passed, whichever comes first. */
function settleConnection(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      client.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    client.once('ready', done);
    client.once('error', done);
  });
}

/** A small pool on another test database, refused unless its name says it is for tests. */
function createOtherTestDatabase(url: string): Database {
  if (!/test/i.test(databaseNameOf(url)))
    throw new Error(`Refusing to use "${databaseNameOf(url)}": not a test database.`);
  testDatabaseUrl(); // the suite's own guard: DATABASE_URL must be set and a test database too
  return createDatabase({
    url,
    poolMax: 4,
    connectTimeoutMs: 2_000,
    statementTimeoutMs: 10_000,
    applicationName: 'tests',
  });
}

/** A source name no other test uses, so each test sees only its own records. */
export const uniqueSource = (label = 'test'): string =>
  `${label}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}`;

/** POSTs JSON (or raw text) to the ingest function. */
export async function postJson(
  app: TestApp,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(`${app.ingestUrl}/data`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

export async function getJson(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(url, { headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

export const isoAgo = (ms: number): string => new Date(Date.now() - ms).toISOString();
