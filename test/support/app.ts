/**
 * Both functions built by their own composition roots (functions/<fn>/app.ts, exactly what main.ts serves), on
 * real PostgreSQL, each on its own loopback port. Tests talk to them over real HTTP. Settings go through
 * `loadConfig` as environment variables, as in production; only the clients are created here.
 */

import { randomUUID } from 'node:crypto';
import { createRedisClient, type RedisClient, type RedisRecordCache } from '#lib/cache';
import {
  type CacheConfig,
  type KafkaConfig,
  loadConfig,
  type RecordLimits,
  type RelayConfig,
  type ServiceConfig,
} from '#lib/config';
import { createDatabase, type Database, databaseNameOf } from '#lib/db';
import { createKafkaPublisher, type OutboxRelay } from '#lib/events';
import { createSilentLogger, type Metrics } from '#lib/observability';
import { createRuntimeServer, type RuntimeServer } from '#lib/runtime';
import { createIngestApp } from '../../functions/ingest/app.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import { type TestIssuer, testIssuer } from './auth.ts';
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
  /** The configuration both functions were built from. */
  readonly config: ServiceConfig;
  /** The query function's metrics registry, as its /metrics serves it. */
  readonly queryMetrics: Metrics;
  close(): Promise<void>;
}

export interface TestRedisOptions {
  /** Defaults to REDIS_URL. */
  readonly url?: string;
  /** `host:port` seeds of a Redis Cluster, used instead of `url` (REDIS_CLUSTER_NODES). */
  readonly clusterNodes?: readonly string[];
  readonly password?: string;
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
  /** Wires a Redis client into both functions, as their main.ts does. */
  readonly redis?: boolean | TestRedisOptions;
  /** Wires a Kafka publisher and the outbox relay into ingest, as its main.ts does. */
  readonly kafka?: TestKafkaOptions;
  /** Another test database than DATABASE_URL's (its name must contain "test"); migrated by the caller. */
  readonly databaseUrl?: string;
  /** The query function's own connection URL (as production gives each function its own database user). */
  readonly queryDatabaseUrl?: string;
  /** A read replica for the query function (DATABASE_READ_URL), as its main.ts wires it. */
  readonly readDatabaseUrl?: string;
  /** false: no in-process tier of ready responses in query, so every GET by id reaches the cache and store. */
  readonly responseTier?: boolean;
  /**
   * Bearer tokens of the test issuer (test/support/auth.ts), as in production; `false` runs with AUTH_MODE=none.
   * The per-caller rate limit is off unless `env` sets RATE_LIMIT_PER_SECOND.
   */
  readonly auth?: boolean | TestIssuer;
  /** More settings, as environment variables (e.g. GROUP_COMMIT_ENABLED). */
  readonly env?: Readonly<Record<string, string>>;
}

export const TEST_CACHE_CONFIG: CacheConfig = {
  recordTtlSeconds: 86_400,
  negativeTtlSeconds: 5,
  listTtlSeconds: 2,
  valueMaxBytes: 1024 * 1024,
  breakerFailureThreshold: 5,
  breakerResetMs: 5_000,
};

export const TEST_RELAY_CONFIG: Omit<RelayConfig, 'enabled'> = {
  batchSize: 100,
  batchBytes: 4 * 1024 * 1024,
  maxRequestBytes: undefined,
  pollIntervalMs: 100,
  maxBackoffMs: 1_000,
};

const redisUrlFromEnv = (): string => {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set; run the suite with scripts/run-tests.ts (it starts Redis).');
  return url;
};

const kafkaBrokersFromEnv = (): string[] => {
  const list = process.env.KAFKA_BROKERS?.split(',');
  if (list === undefined || list.length === 0 || list[0] === '') {
    throw new Error('KAFKA_BROKERS is not set; run the suite with scripts/run-tests.ts (it starts Kafka).');
  }
  return list;
};

/** Kafka settings for tests: KAFKA_BROKERS and the given topic. */
export function testKafkaConfig(topic: string, brokers?: readonly string[], partitions = 3): KafkaConfig {
  const kafka = testConfig({
    KAFKA_BROKERS: (brokers ?? kafkaBrokersFromEnv()).join(','),
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: String(partitions),
    KAFKA_CLIENT_ID: 'data-service-tests',
  }).kafka;
  if (kafka === undefined) throw new Error('unreachable: KAFKA_BROKERS was given');
  return kafka;
}

/**
 * The service's configuration for tests: the suite's database, a test cursor secret, no authentication (test
 * apps turn it on, see `startTestApp`), and `env` on top.
 */
export function testConfig(env: Readonly<Record<string, string | undefined>> = {}): ServiceConfig {
  return loadConfig({
    DATABASE_URL: testDatabaseUrl(),
    CURSOR_SECRET: 'test-cursor-secret-0123456789',
    LOG_LEVEL: 'silent',
    AUTH_MODE: 'none',
    ...env,
  });
}

/** The options of a test app as the environment variables production would set. */
function envOf(
  options: TestAppOptions,
  redisPrefix: string | undefined,
  issuer: TestIssuer | undefined,
): Record<string, string | undefined> {
  const limits = { ...TEST_LIMITS, ...options.limits };
  const redis = options.redis === true ? {} : options.redis || undefined;
  const cache = { ...TEST_CACHE_CONFIG, ...redis?.cache };
  const relay = { ...TEST_RELAY_CONFIG, ...options.kafka?.relay };
  return {
    ...(options.databaseUrl !== undefined && { DATABASE_URL: options.databaseUrl }),
    DATABASE_POOL_MAX: '4',
    BODY_LIMIT_BYTES: String(options.bodyLimitBytes ?? 1024 * 1024),
    RECORDS_MAX_BATCH: String(limits.maxBatchRecords),
    RECORD_PAYLOAD_MAX_BYTES: String(limits.payloadMaxBytes),
    RECORD_PAYLOAD_MAX_DEPTH: String(limits.payloadMaxDepth),
    RECORD_MAX_PAST_DAYS: String(limits.maxPastMs / 86_400_000),
    RECORD_MAX_FUTURE_HOURS: String(limits.maxFutureMs / 3_600_000),
    ...(redis && {
      ...(redis.clusterNodes === undefined
        ? { REDIS_URL: redis.url ?? redisUrlFromEnv() }
        : { REDIS_CLUSTER_NODES: redis.clusterNodes.join(',') }),
      ...(redis.password !== undefined && { REDIS_PASSWORD: redis.password }),
      REDIS_KEY_PREFIX: redisPrefix,
      REDIS_COMMAND_TIMEOUT_MS: String(redis.commandTimeoutMs ?? 100),
      REDIS_CONNECT_TIMEOUT_MS: String(redis.connectTimeoutMs ?? 1_000),
      CACHE_RECORD_TTL_SECONDS: String(cache.recordTtlSeconds),
      CACHE_NEGATIVE_TTL_SECONDS: String(cache.negativeTtlSeconds),
      CACHE_LIST_TTL_SECONDS: String(cache.listTtlSeconds),
      CACHE_BREAKER_FAILURES: String(cache.breakerFailureThreshold),
      CACHE_BREAKER_RESET_MS: String(cache.breakerResetMs),
    }),
    ...(options.kafka && {
      KAFKA_BROKERS: (options.kafka.brokers ?? kafkaBrokersFromEnv()).join(','),
      KAFKA_TOPIC: options.kafka.topic,
      KAFKA_TOPIC_PARTITIONS: String(options.kafka.partitions ?? 3),
      KAFKA_CLIENT_ID: 'data-service-tests',
      RELAY_BATCH_SIZE: String(relay.batchSize),
      RELAY_BATCH_BYTES: String(relay.batchBytes),
      RELAY_MAX_REQUEST_BYTES: relay.maxRequestBytes === undefined ? undefined : String(relay.maxRequestBytes),
      RELAY_POLL_INTERVAL_MS: String(relay.pollIntervalMs),
      RELAY_MAX_BACKOFF_MS: String(relay.maxBackoffMs),
    }),
    ...(options.responseTier === false && { QUERY_RESPONSE_CACHE_ENTRIES: '0' }),
    ...(issuer && {
      AUTH_MODE: 'jwt',
      AUTH_JWKS_URL: issuer.jwksUrl,
      AUTH_ISSUER: issuer.issuer,
      AUTH_AUDIENCE: issuer.audience,
      RATE_LIMIT_PER_SECOND: '0',
    }),
    ...options.env,
  };
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const redisOptions = options.redis === true ? {} : options.redis || undefined;
  const redisPrefix = redisOptions && (redisOptions.keyPrefix ?? `test:${randomUUID().slice(0, 8)}:`);
  const issuer =
    options.auth === false ? undefined : typeof options.auth === 'object' ? options.auth : await testIssuer();
  const config = testConfig(envOf(options, redisPrefix, issuer));
  const db = options.databaseUrl === undefined ? createTestDatabase() : createOtherTestDatabase(options.databaseUrl);
  const queryDb = options.queryDatabaseUrl === undefined ? db : createOtherTestDatabase(options.queryDatabaseUrl);
  const readDb = options.readDatabaseUrl === undefined ? undefined : createOtherTestDatabase(options.readDatabaseUrl);
  const logger = createSilentLogger();

  // As functions/*/main.ts: each function has its own Redis client.
  const redisClients: RedisClient[] = config.redis
    ? [createRedisClient(config.redis, logger), createRedisClient(config.redis, logger)]
    : [];
  // A command sent before the client is ready fails at once (no offline queue) and counts against the breaker:
  // give reachable servers their connect time, so tests start from a warm client (an unreachable one errs at once).
  await Promise.all(redisClients.map((client) => settleConnection(client, config.redis?.connectTimeoutMs ?? 1_000)));
  const [ingestRedis, queryRedis] = redisClients;

  const publisher = config.kafka && createKafkaPublisher({ config: config.kafka, logger });
  const ingestApp = createIngestApp(config, { db, redis: ingestRedis, publisher }, logger);
  // The test database is migrated and maintained once per run by the global setup.
  await ingestApp.start({ maintenance: false, relay: options.kafka?.startRelay !== false });
  const queryApp = createQueryApp(config, { db: queryDb, readDb, redis: queryRedis }, logger);

  const server = (name: string, app: { handler: typeof ingestApp.handler; readiness: () => Promise<boolean> }) =>
    createRuntimeServer({
      ...config.http,
      functionName: name,
      handler: app.handler,
      readiness: app.readiness,
      logger,
    });
  const ingest = server('ingest', ingestApp);
  const query = server('query', queryApp);
  const ingestAddress = await ingest.listen(0, '127.0.0.1');
  const queryAddress = await query.listen(0, '127.0.0.1');
  return {
    ingestUrl: `http://127.0.0.1:${ingestAddress.port}`,
    queryUrl: `http://127.0.0.1:${queryAddress.port}`,
    db,
    ingest,
    query,
    redisKeyPrefix: redisPrefix,
    cache: queryApp.cache,
    ingestCache: ingestApp.cache,
    relay: ingestApp.relay,
    kafkaConfig: config.kafka,
    config,
    queryMetrics: queryApp.metrics,
    async close() {
      await Promise.all([ingest.drain(5_000), query.drain(5_000)]);
      // As functions/*/main.ts: the apps first, then the clients.
      await Promise.all([ingestApp.close(), queryApp.close()]);
      await publisher?.close();
      for (const redis of redisClients) redis.disconnect();
      await db.destroy();
      if (queryDb !== db) await queryDb.destroy();
      await readDb?.destroy();
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

/**
 * The headers of a test request: a token of the test issuer granting every source, unless `headers` has its own
 * `authorization` (an empty one sends none). Apps without auth ignore it.
 */
export async function withToken(headers: Record<string, string> = {}): Promise<Record<string, string>> {
  if (headers.authorization === undefined) {
    return { authorization: `Bearer ${await (await testIssuer()).allAccess()}`, ...headers };
  }
  if (headers.authorization !== '') return headers;
  const { authorization: _none, ...rest } = headers;
  return rest;
}

/** POSTs JSON (or raw text) to the ingest function, with a token (see `withToken`). */
export async function postJson(
  app: TestApp,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(`${app.ingestUrl}/data`, {
    method: 'POST',
    headers: await withToken({ 'content-type': 'application/json', ...headers }),
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

export async function getJson(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(url, { headers: await withToken(headers) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

export const isoAgo = (ms: number): string => new Date(Date.now() - ms).toISOString();
