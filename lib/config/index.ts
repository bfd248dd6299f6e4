/**
 * Environment → one frozen, typed, validated configuration object. Only a process entry (`main.ts`, scripts)
 * calls `loadConfig(process.env)`; everything else receives the slice it needs.
 */
import Joi from 'joi';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface DatabaseConfig {
  readonly url: string;
  /** Optional read replica used by the query function. */
  readonly readUrl: string | undefined;
  readonly poolMax: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

export interface HttpConfig {
  readonly host: string;
  readonly port: number;
  readonly bodyLimitBytes: number;
  /** Above Knative queue-proxy's 90 s idle timeout, or it reuses sockets we already closed (knative/serving#12414). */
  readonly keepAliveTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** How long SIGTERM may take to drain in-flight requests before the process gives up and exits. */
  readonly drainTimeoutMs: number;
}

export interface RecordLimits {
  readonly maxBatchRecords: number;
  readonly payloadMaxBytes: number;
  readonly payloadMaxDepth: number;
  readonly maxPastMs: number;
  readonly maxFutureMs: number;
}

export interface StorageConfig {
  /** Daily partitions created ahead of today. */
  readonly partitionPrecreateDays: number;
  /** Drop partitions older than this many days; 0 keeps everything. */
  readonly retentionDays: number;
  readonly idempotencyTtlHours: number;
}

export interface RedisConfig {
  /** `redis://` or `rediss://` URL of a standalone server (ElastiCache without cluster mode). */
  readonly url: string | undefined;
  /** `host:port` seed nodes of a Redis Cluster (ElastiCache cluster mode); wins over `url`. */
  readonly clusterNodes: readonly string[];
  readonly tls: boolean;
  readonly keyPrefix: string;
  /** Per-command budget: Redis down must cost milliseconds, not seconds. */
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

export interface CacheConfig {
  readonly recordTtlSeconds: number;
  /** Short, and cleared by every write of the id: a cached 404 must never hide a record just written. */
  readonly negativeTtlSeconds: number;
  readonly listTtlSeconds: number;
  readonly breakerFailureThreshold: number;
  readonly breakerResetMs: number;
}

export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topic: string;
  readonly topicPartitions: number;
  readonly topicReplicationFactor: number;
  readonly ssl: boolean;
  readonly sasl:
    | {
        readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
        readonly username: string;
        readonly password: string;
      }
    | undefined;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

export interface RelayConfig {
  /** Whether the ingest function also relays the outbox (a separate `npm run relay` deployment may do it instead). */
  readonly enabled: boolean;
  /** Outbox rows (one per committed write) claimed per Kafka send. */
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly maxBackoffMs: number;
}

export interface GroupCommitConfig {
  readonly enabled: boolean;
  readonly maxBatchRecords: number;
  readonly windowMs: number;
  readonly concurrency: number;
  readonly maxQueuedRecords: number;
}

export interface TracingConfig {
  /** OTLP/HTTP endpoint; undefined turns tracing off (no spans, no cost). */
  readonly otlpEndpoint: string | undefined;
  /** Share of traces started here that are sampled; callers' sampled flags are honoured (parent-based). */
  readonly sampleRatio: number;
}

export interface ServiceConfig {
  readonly service: string;
  readonly revision: string;
  readonly logLevel: LogLevel;
  readonly database: DatabaseConfig;
  readonly http: HttpConfig;
  readonly records: RecordLimits;
  readonly storage: StorageConfig;
  readonly cursorSecret: string;
  /** Undefined when neither REDIS_URL nor REDIS_CLUSTER_NODES is set: reads then go straight to PostgreSQL. */
  readonly redis: RedisConfig | undefined;
  readonly cache: CacheConfig;
  /** Undefined without KAFKA_BROKERS: events wait in the outbox until a relay with Kafka runs. */
  readonly kafka: KafkaConfig | undefined;
  readonly relay: RelayConfig;
  readonly groupCommit: GroupCommitConfig;
  readonly tracing: TracingConfig;
  /** In-process tier of ready GET-by-id responses in the query function; 0 entries turns it off. */
  readonly responseTier: { readonly maxEntries: number; readonly maxBytes: number };
}

/** Thrown with every invalid variable named, so one failed start shows everything to fix. */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Cursors are authenticated so that clients cannot forge positions; deployments set their own secret.
const DEFAULT_CURSOR_SECRET = 'data-service-default-cursor-secret';

const HOST_PORT_LIST = /^[\w.-]+:\d{1,5}(,[\w.-]+:\d{1,5})*$/;
const postgresUrl = Joi.string().uri({ scheme: ['postgres', 'postgresql'] });
const int = (min: number, max: number) => Joi.number().integer().min(min).max(max);

const envSchema = Joi.object({
  K_SERVICE: Joi.string().max(200).default('data-service'),
  K_REVISION: Joi.string().max(200).default('local'),
  LOG_LEVEL: Joi.string().valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent').default('info'),
  DATABASE_URL: postgresUrl.required(),
  DATABASE_READ_URL: postgresUrl,
  DATABASE_POOL_MAX: int(1, 1000).default(10),
  DATABASE_CONNECT_TIMEOUT_MS: int(100, 60_000).default(2_000),
  DATABASE_STATEMENT_TIMEOUT_MS: int(100, 600_000).default(10_000),
  HOST: Joi.string().hostname().default('0.0.0.0'),
  PORT: Joi.number().port().default(8080),
  BODY_LIMIT_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  KEEP_ALIVE_TIMEOUT_MS: int(1_000, 3_600_000).default(95_000),
  HEADERS_TIMEOUT_MS: int(1_000, 600_000).default(10_000),
  REQUEST_TIMEOUT_MS: int(1_000, 600_000).default(30_000),
  DRAIN_TIMEOUT_MS: int(0, 600_000).default(25_000),
  RECORDS_MAX_BATCH: int(1, 10_000).default(1_000),
  RECORD_PAYLOAD_MAX_BYTES: int(2, 16 * 1024 * 1024).default(64 * 1024),
  RECORD_PAYLOAD_MAX_DEPTH: int(1, 256).default(16),
  RECORD_MAX_PAST_DAYS: int(1, 3650).default(7),
  RECORD_MAX_FUTURE_HOURS: int(0, 24 * 365).default(24),
  PARTITION_PRECREATE_DAYS: int(1, 365).default(7),
  RETENTION_DAYS: int(0, 36_500).default(0),
  IDEMPOTENCY_TTL_HOURS: int(1, 24 * 30).default(24),
  CURSOR_SECRET: Joi.string().min(16).default(DEFAULT_CURSOR_SECRET),
  REDIS_URL: Joi.string().uri({ scheme: ['redis', 'rediss'] }),
  REDIS_CLUSTER_NODES: Joi.string()
    .pattern(HOST_PORT_LIST)
    .messages({ 'string.pattern.base': 'REDIS_CLUSTER_NODES must be a comma-separated list of host:port' }),
  REDIS_TLS: Joi.boolean().truthy('1').falsy('0').default(false),
  REDIS_KEY_PREFIX: Joi.string()
    .max(64)
    .pattern(/^[\w:.-]*$/)
    .default('ds:'),
  REDIS_COMMAND_TIMEOUT_MS: int(5, 10_000).default(100),
  REDIS_CONNECT_TIMEOUT_MS: int(50, 60_000).default(1_000),
  CACHE_RECORD_TTL_SECONDS: int(1, 30 * 86_400).default(86_400),
  CACHE_NEGATIVE_TTL_SECONDS: int(1, 3_600).default(5),
  CACHE_LIST_TTL_SECONDS: int(1, 3_600).default(2),
  CACHE_BREAKER_FAILURES: int(1, 1_000).default(5),
  CACHE_BREAKER_RESET_MS: int(100, 600_000).default(5_000),
  KAFKA_BROKERS: Joi.string()
    .pattern(HOST_PORT_LIST)
    .messages({ 'string.pattern.base': 'KAFKA_BROKERS must be a comma-separated list of host:port' }),
  KAFKA_CLIENT_ID: Joi.string().max(200).default('data-service'),
  KAFKA_TOPIC: Joi.string()
    .pattern(/^[A-Za-z0-9._-]{1,249}$/)
    .default('records'),
  KAFKA_TOPIC_PARTITIONS: int(1, 10_000).default(6),
  KAFKA_TOPIC_REPLICATION: int(1, 10).default(1),
  KAFKA_SSL: Joi.boolean().truthy('1').falsy('0').default(false),
  KAFKA_SASL_MECHANISM: Joi.string().valid('plain', 'scram-sha-256', 'scram-sha-512'),
  KAFKA_SASL_USERNAME: Joi.string(),
  KAFKA_SASL_PASSWORD: Joi.string(),
  KAFKA_CONNECTION_TIMEOUT_MS: int(100, 60_000).default(1_000),
  KAFKA_REQUEST_TIMEOUT_MS: int(100, 120_000).default(5_000),
  RELAY_ENABLED: Joi.boolean().truthy('1').falsy('0').default(true),
  RELAY_BATCH_SIZE: int(1, 10_000).default(100),
  RELAY_POLL_INTERVAL_MS: int(5, 60_000).default(100),
  RELAY_MAX_BACKOFF_MS: int(100, 600_000).default(5_000),
  OTEL_EXPORTER_OTLP_ENDPOINT: Joi.string().uri({ scheme: ['http', 'https'] }),
  OTEL_TRACES_SAMPLER_ARG: Joi.number().min(0).max(1).default(0.01),
  OTEL_SDK_DISABLED: Joi.boolean().truthy('1').falsy('0').default(false),
  QUERY_RESPONSE_CACHE_ENTRIES: int(0, 10_000_000).default(10_000),
  QUERY_RESPONSE_CACHE_BYTES: int(0, 4 * 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  GROUP_COMMIT_ENABLED: Joi.boolean().truthy('1').falsy('0').default(true),
  GROUP_COMMIT_MAX_RECORDS: int(1, 100_000).default(1_000),
  GROUP_COMMIT_WINDOW_MS: int(0, 1_000).default(1),
  GROUP_COMMIT_CONCURRENCY: int(1, 100).default(2),
  GROUP_COMMIT_MAX_QUEUED_RECORDS: int(1, 10_000_000).default(20_000),
}).with('KAFKA_SASL_MECHANISM', ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD']);

type Env = Readonly<Record<string, string | undefined>>;

interface ParsedEnv {
  K_SERVICE: string;
  K_REVISION: string;
  LOG_LEVEL: LogLevel;
  DATABASE_URL: string;
  DATABASE_READ_URL?: string;
  DATABASE_POOL_MAX: number;
  DATABASE_CONNECT_TIMEOUT_MS: number;
  DATABASE_STATEMENT_TIMEOUT_MS: number;
  HOST: string;
  PORT: number;
  BODY_LIMIT_BYTES: number;
  KEEP_ALIVE_TIMEOUT_MS: number;
  HEADERS_TIMEOUT_MS: number;
  REQUEST_TIMEOUT_MS: number;
  DRAIN_TIMEOUT_MS: number;
  RECORDS_MAX_BATCH: number;
  RECORD_PAYLOAD_MAX_BYTES: number;
  RECORD_PAYLOAD_MAX_DEPTH: number;
  RECORD_MAX_PAST_DAYS: number;
  RECORD_MAX_FUTURE_HOURS: number;
  PARTITION_PRECREATE_DAYS: number;
  RETENTION_DAYS: number;
  IDEMPOTENCY_TTL_HOURS: number;
  CURSOR_SECRET: string;
  REDIS_URL?: string;
  REDIS_CLUSTER_NODES?: string;
  REDIS_TLS: boolean;
  REDIS_KEY_PREFIX: string;
  REDIS_COMMAND_TIMEOUT_MS: number;
  REDIS_CONNECT_TIMEOUT_MS: number;
  CACHE_RECORD_TTL_SECONDS: number;
  CACHE_NEGATIVE_TTL_SECONDS: number;
  CACHE_LIST_TTL_SECONDS: number;
  CACHE_BREAKER_FAILURES: number;
  CACHE_BREAKER_RESET_MS: number;
  KAFKA_BROKERS?: string;
  KAFKA_CLIENT_ID: string;
  KAFKA_TOPIC: string;
  KAFKA_TOPIC_PARTITIONS: number;
  KAFKA_TOPIC_REPLICATION: number;
  KAFKA_SSL: boolean;
  KAFKA_SASL_MECHANISM?: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  KAFKA_SASL_USERNAME?: string;
  KAFKA_SASL_PASSWORD?: string;
  KAFKA_CONNECTION_TIMEOUT_MS: number;
  KAFKA_REQUEST_TIMEOUT_MS: number;
  RELAY_ENABLED: boolean;
  RELAY_BATCH_SIZE: number;
  RELAY_POLL_INTERVAL_MS: number;
  RELAY_MAX_BACKOFF_MS: number;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  OTEL_TRACES_SAMPLER_ARG: number;
  OTEL_SDK_DISABLED: boolean;
  QUERY_RESPONSE_CACHE_ENTRIES: number;
  QUERY_RESPONSE_CACHE_BYTES: number;
  GROUP_COMMIT_ENABLED: boolean;
  GROUP_COMMIT_MAX_RECORDS: number;
  GROUP_COMMIT_WINDOW_MS: number;
  GROUP_COMMIT_CONCURRENCY: number;
  GROUP_COMMIT_MAX_QUEUED_RECORDS: number;
}

/** Parses and validates the environment; throws a `ConfigError` naming every bad variable. */
export function loadConfig(env: Env): ServiceConfig {
  // Empty strings count as unset: `FOO= npm start` should mean "default", not "invalid".
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const { error, value } = envSchema.validate(present, {
    abortEarly: false,
    allowUnknown: true,
    stripUnknown: true,
    convert: true,
  });
  const problems = (error?.details ?? []).map((d) => d.message.replaceAll('"', ''));
  // Cross-variable rules are checked on their own so that they are reported together with every other problem.
  const retention = Number(present.RETENTION_DAYS ?? 0);
  const past = Number(present.RECORD_MAX_PAST_DAYS ?? 7);
  if (retention > 0 && Number.isFinite(past) && retention <= past) {
    problems.push(
      `RETENTION_DAYS (${retention}) must exceed RECORD_MAX_PAST_DAYS (${past}), or writes would land in dropped partitions`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const e = value as ParsedEnv;
  return deepFreeze({
    service: e.K_SERVICE,
    revision: e.K_REVISION,
    logLevel: e.LOG_LEVEL,
    database: {
      url: e.DATABASE_URL,
      readUrl: e.DATABASE_READ_URL,
      poolMax: e.DATABASE_POOL_MAX,
      connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    },
    http: {
      host: e.HOST,
      port: e.PORT,
      bodyLimitBytes: e.BODY_LIMIT_BYTES,
      keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
      headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    },
    records: {
      maxBatchRecords: e.RECORDS_MAX_BATCH,
      payloadMaxBytes: e.RECORD_PAYLOAD_MAX_BYTES,
      payloadMaxDepth: e.RECORD_PAYLOAD_MAX_DEPTH,
      maxPastMs: e.RECORD_MAX_PAST_DAYS * DAY_MS,
      maxFutureMs: e.RECORD_MAX_FUTURE_HOURS * 60 * 60 * 1000,
    },
    storage: {
      partitionPrecreateDays: e.PARTITION_PRECREATE_DAYS,
      retentionDays: e.RETENTION_DAYS,
      idempotencyTtlHours: e.IDEMPOTENCY_TTL_HOURS,
    },
    cursorSecret: e.CURSOR_SECRET,
    redis:
      e.REDIS_URL === undefined && e.REDIS_CLUSTER_NODES === undefined
        ? undefined
        : {
            url: e.REDIS_URL,
            clusterNodes: e.REDIS_CLUSTER_NODES?.split(',') ?? [],
            tls: e.REDIS_TLS,
            keyPrefix: e.REDIS_KEY_PREFIX,
            commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
            connectTimeoutMs: e.REDIS_CONNECT_TIMEOUT_MS,
          },
    cache: {
      recordTtlSeconds: e.CACHE_RECORD_TTL_SECONDS,
      negativeTtlSeconds: e.CACHE_NEGATIVE_TTL_SECONDS,
      listTtlSeconds: e.CACHE_LIST_TTL_SECONDS,
      breakerFailureThreshold: e.CACHE_BREAKER_FAILURES,
      breakerResetMs: e.CACHE_BREAKER_RESET_MS,
    },
    kafka:
      e.KAFKA_BROKERS === undefined
        ? undefined
        : {
            brokers: e.KAFKA_BROKERS.split(','),
            clientId: e.KAFKA_CLIENT_ID,
            topic: e.KAFKA_TOPIC,
            topicPartitions: e.KAFKA_TOPIC_PARTITIONS,
            topicReplicationFactor: e.KAFKA_TOPIC_REPLICATION,
            ssl: e.KAFKA_SSL,
            sasl:
              e.KAFKA_SASL_MECHANISM === undefined
                ? undefined
                : {
                    mechanism: e.KAFKA_SASL_MECHANISM,
                    username: e.KAFKA_SASL_USERNAME ?? '',
                    password: e.KAFKA_SASL_PASSWORD ?? '',
                  },
            connectionTimeoutMs: e.KAFKA_CONNECTION_TIMEOUT_MS,
            requestTimeoutMs: e.KAFKA_REQUEST_TIMEOUT_MS,
          },
    relay: {
      enabled: e.RELAY_ENABLED,
      batchSize: e.RELAY_BATCH_SIZE,
      pollIntervalMs: e.RELAY_POLL_INTERVAL_MS,
      maxBackoffMs: e.RELAY_MAX_BACKOFF_MS,
    },
    groupCommit: {
      enabled: e.GROUP_COMMIT_ENABLED,
      maxBatchRecords: e.GROUP_COMMIT_MAX_RECORDS,
      windowMs: e.GROUP_COMMIT_WINDOW_MS,
      concurrency: e.GROUP_COMMIT_CONCURRENCY,
      maxQueuedRecords: e.GROUP_COMMIT_MAX_QUEUED_RECORDS,
    },
    responseTier: { maxEntries: e.QUERY_RESPONSE_CACHE_ENTRIES, maxBytes: e.QUERY_RESPONSE_CACHE_BYTES },
    tracing: {
      otlpEndpoint: e.OTEL_SDK_DISABLED ? undefined : e.OTEL_EXPORTER_OTLP_ENDPOINT,
      sampleRatio: e.OTEL_TRACES_SAMPLER_ARG,
    },
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
