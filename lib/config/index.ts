/**
 * Environment → one frozen, typed, validated configuration object. Only a process entry (`main.ts`, scripts)
 * calls `loadConfig(process.env)`; everything else receives the slice it needs.
 *
 * Each variable is declared once, in `SETTINGS`: its name, its joi schema (type, bounds, default) and where its
 * value goes. The types below are derived from that declaration, and so is the validation, which reports every
 * bad variable in one message.
 */
import Joi from 'joi';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** One environment variable: its joi schema, and a conversion of its value (days → ms, a list, …). */
interface Setting<T> {
  readonly variable: string;
  readonly schema: Joi.Schema;
  readonly convert: (value: unknown) => T;
}

const setting = <T>(variable: string, schema: Joi.AnySchema<T>): Setting<T> => ({
  variable,
  schema,
  convert: (value) => value as T,
});
/** A variable without a default: undefined when unset. */
const optional = <T>(variable: string, schema: Joi.AnySchema<T>): Setting<T | undefined> => setting(variable, schema);
const converted = <T, U>(variable: string, schema: Joi.AnySchema<T>, convert: (value: T) => U): Setting<U> => ({
  variable,
  schema,
  convert: (value) => convert(value as T),
});

const DAY_MS = 24 * 60 * 60 * 1000;
// Cursors are authenticated so that clients cannot forge positions; deployments set their own secret.
const DEFAULT_CURSOR_SECRET = 'data-service-default-cursor-secret';
const HOST_PORT_LIST = /^[\w.-]+:\d{1,5}(,[\w.-]+:\d{1,5})*$/;
const postgresUrl = () => Joi.string().uri({ scheme: ['postgres', 'postgresql'] });
const int = (min: number, max: number) => Joi.number().integer().min(min).max(max);
const flag = () => Joi.boolean().truthy('1').falsy('0');
const hostPorts = (variable: string) =>
  Joi.string()
    .pattern(HOST_PORT_LIST)
    .messages({ 'string.pattern.base': `${variable} must be a comma-separated list of host:port` });
const list = (value: string | undefined): readonly string[] => (value === undefined ? [] : value.split(','));

const SETTINGS = {
  service: setting('K_SERVICE', Joi.string().max(200).default('data-service')),
  revision: setting('K_REVISION', Joi.string().max(200).default('local')),
  logLevel: setting(
    'LOG_LEVEL',
    Joi.string<LogLevel>().valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent').default('info'),
  ),
  database: {
    url: setting('DATABASE_URL', postgresUrl().required()),
    /** Optional read replica used by the query function. */
    readUrl: optional('DATABASE_READ_URL', postgresUrl()),
    poolMax: setting('DATABASE_POOL_MAX', int(1, 1000).default(10)),
    connectTimeoutMs: setting('DATABASE_CONNECT_TIMEOUT_MS', int(100, 60_000).default(2_000)),
    statementTimeoutMs: setting('DATABASE_STATEMENT_TIMEOUT_MS', int(100, 600_000).default(10_000)),
  },
  http: {
    host: setting('HOST', Joi.string().hostname().default('0.0.0.0')),
    port: setting('PORT', Joi.number().port().default(8080)),
    bodyLimitBytes: setting('BODY_LIMIT_BYTES', int(1024, 64 * 1024 * 1024).default(1024 * 1024)),
    /** Above Knative queue-proxy's 90 s idle timeout, or it reuses sockets we already closed (knative/serving#12414). */
    keepAliveTimeoutMs: setting('KEEP_ALIVE_TIMEOUT_MS', int(1_000, 3_600_000).default(95_000)),
    headersTimeoutMs: setting('HEADERS_TIMEOUT_MS', int(1_000, 600_000).default(10_000)),
    requestTimeoutMs: setting('REQUEST_TIMEOUT_MS', int(1_000, 600_000).default(30_000)),
    /** How long SIGTERM may take to drain in-flight requests before the process gives up and exits. */
    drainTimeoutMs: setting('DRAIN_TIMEOUT_MS', int(0, 600_000).default(25_000)),
  },
  records: {
    maxBatchRecords: setting('RECORDS_MAX_BATCH', int(1, 10_000).default(1_000)),
    payloadMaxBytes: setting('RECORD_PAYLOAD_MAX_BYTES', int(2, 16 * 1024 * 1024).default(64 * 1024)),
    payloadMaxDepth: setting('RECORD_PAYLOAD_MAX_DEPTH', int(1, 256).default(16)),
    maxPastMs: converted('RECORD_MAX_PAST_DAYS', int(1, 3650).default(7), (days: number) => days * DAY_MS),
    maxFutureMs: converted('RECORD_MAX_FUTURE_HOURS', int(0, 24 * 365).default(24), (h: number) => h * 3_600_000),
  },
  storage: {
    /** Daily partitions created ahead of today. */
    partitionPrecreateDays: setting('PARTITION_PRECREATE_DAYS', int(1, 365).default(7)),
    /** Drop partitions older than this many days; 0 keeps everything. */
    retentionDays: setting('RETENTION_DAYS', int(0, 36_500).default(0)),
    idempotencyTtlHours: setting('IDEMPOTENCY_TTL_HOURS', int(1, 24 * 30).default(24)),
  },
  cursorSecret: setting('CURSOR_SECRET', Joi.string().min(16).default(DEFAULT_CURSOR_SECRET)),
  redis: {
    /** `redis://` or `rediss://` URL of a standalone server (ElastiCache without cluster mode). */
    url: optional('REDIS_URL', Joi.string().uri({ scheme: ['redis', 'rediss'] })),
    /** `host:port` seed nodes of a Redis Cluster (ElastiCache cluster mode); wins over `url`. */
    clusterNodes: converted('REDIS_CLUSTER_NODES', hostPorts('REDIS_CLUSTER_NODES'), list),
    tls: setting('REDIS_TLS', flag().default(false)),
    keyPrefix: setting(
      'REDIS_KEY_PREFIX',
      Joi.string()
        .max(64)
        .pattern(/^[\w:.-]*$/)
        .default('ds:'),
    ),
    /** Per-command budget: Redis down must cost milliseconds, not seconds. */
    commandTimeoutMs: setting('REDIS_COMMAND_TIMEOUT_MS', int(5, 10_000).default(100)),
    connectTimeoutMs: setting('REDIS_CONNECT_TIMEOUT_MS', int(50, 60_000).default(1_000)),
  },
  cache: {
    recordTtlSeconds: setting('CACHE_RECORD_TTL_SECONDS', int(1, 30 * 86_400).default(86_400)),
    /** Short, and cleared by every write of the id: a cached 404 must never hide a record just written. */
    negativeTtlSeconds: setting('CACHE_NEGATIVE_TTL_SECONDS', int(1, 3_600).default(5)),
    listTtlSeconds: setting('CACHE_LIST_TTL_SECONDS', int(1, 3_600).default(2)),
    breakerFailureThreshold: setting('CACHE_BREAKER_FAILURES', int(1, 1_000).default(5)),
    breakerResetMs: setting('CACHE_BREAKER_RESET_MS', int(100, 600_000).default(5_000)),
  },
  kafka: {
    brokers: converted('KAFKA_BROKERS', hostPorts('KAFKA_BROKERS'), list),
    clientId: setting('KAFKA_CLIENT_ID', Joi.string().max(200).default('data-service')),
    topic: setting(
      'KAFKA_TOPIC',
      Joi.string()
        .pattern(/^[A-Za-z0-9._-]{1,249}$/)
        .default('records'),
    ),
    topicPartitions: setting('KAFKA_TOPIC_PARTITIONS', int(1, 10_000).default(6)),
    topicReplicationFactor: setting('KAFKA_TOPIC_REPLICATION', int(1, 10).default(1)),
    ssl: setting('KAFKA_SSL', flag().default(false)),
    saslMechanism: optional(
      'KAFKA_SASL_MECHANISM',
      Joi.string<'plain' | 'scram-sha-256' | 'scram-sha-512'>().valid('plain', 'scram-sha-256', 'scram-sha-512'),
    ),
    saslUsername: optional('KAFKA_SASL_USERNAME', Joi.string()),
    saslPassword: optional('KAFKA_SASL_PASSWORD', Joi.string()),
    connectionTimeoutMs: setting('KAFKA_CONNECTION_TIMEOUT_MS', int(100, 60_000).default(1_000)),
    requestTimeoutMs: setting('KAFKA_REQUEST_TIMEOUT_MS', int(100, 120_000).default(5_000)),
  },
  relay: {
    /** Whether the ingest function also relays the outbox (a separate `npm run relay` deployment may do it instead). */
    enabled: setting('RELAY_ENABLED', flag().default(true)),
    /** Outbox events claimed per Kafka send. */
    batchSize: setting('RELAY_BATCH_SIZE', int(1, 10_000).default(500)),
    pollIntervalMs: setting('RELAY_POLL_INTERVAL_MS', int(5, 60_000).default(100)),
    maxBackoffMs: setting('RELAY_MAX_BACKOFF_MS', int(100, 600_000).default(5_000)),
  },
  groupCommit: {
    enabled: setting('GROUP_COMMIT_ENABLED', flag().default(true)),
    maxBatchRecords: setting('GROUP_COMMIT_MAX_RECORDS', int(1, 100_000).default(1_000)),
    windowMs: setting('GROUP_COMMIT_WINDOW_MS', int(0, 1_000).default(1)),
    concurrency: setting('GROUP_COMMIT_CONCURRENCY', int(1, 100).default(2)),
    maxQueuedRecords: setting('GROUP_COMMIT_MAX_QUEUED_RECORDS', int(1, 10_000_000).default(20_000)),
  },
  tracing: {
    /** OTLP/HTTP endpoint; unset (or OTEL_SDK_DISABLED) turns tracing off: no spans, no cost. */
    otlpEndpoint: optional('OTEL_EXPORTER_OTLP_ENDPOINT', Joi.string().uri({ scheme: ['http', 'https'] })),
    /** Share of traces started here that are sampled; callers' sampled flags are honoured (parent-based). */
    sampleRatio: setting('OTEL_TRACES_SAMPLER_ARG', Joi.number().min(0).max(1).default(0.01)),
    disabled: setting('OTEL_SDK_DISABLED', flag().default(false)),
  },
  /** Cold days on S3 (lib/archive); unset S3_BUCKET turns archiving off and retention drops days as before. */
  archive: {
    bucket: optional(
      'S3_BUCKET',
      Joi.string()
        .pattern(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
        .messages({ 'string.pattern.base': 'S3_BUCKET must be an S3 bucket name' }),
    ),
    /** Only for S3-compatible servers (tests); AWS is found from the region. */
    endpoint: optional('S3_ENDPOINT', Joi.string().uri({ scheme: ['http', 'https'] })),
    region: setting(
      'S3_REGION',
      Joi.string()
        .pattern(/^[a-z0-9-]+$/)
        .default('us-east-1'),
    ),
    forcePathStyle: setting('S3_FORCE_PATH_STYLE', flag().default(false)),
    /** Server-side encryption of every object written; unset leaves it to the bucket's default encryption. */
    sse: optional(
      'S3_SSE',
      Joi.string<'AES256' | 'aws:kms' | 'aws:kms:dsse'>().valid('AES256', 'aws:kms', 'aws:kms:dsse'),
    ),
    sseKmsKeyId: optional('S3_SSE_KMS_KEY_ID', Joi.string().max(2048)),
    /** Days older than this are archived; must exceed RECORD_MAX_PAST_DAYS so an archived day takes no writes. */
    afterDays: setting('ARCHIVE_AFTER_DAYS', int(1, 36_500).default(30)),
    prefix: setting(
      'ARCHIVE_PREFIX',
      Joi.string()
        .max(256)
        .pattern(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/)
        .default('data-service'),
    ),
    /** Rows per Parquet row group (also capped at 64 MiB of row data): the unit a range read fetches. */
    rowGroupRows: setting('ARCHIVE_ROW_GROUP_ROWS', int(10, 10_000_000).default(100_000)),
    /** Rows per object: the unit of upload, verification and resume. */
    objectRows: setting('ARCHIVE_OBJECT_ROWS', int(10, 1_000_000_000).default(2_000_000)),
  },
  /** In-process tier of ready GET-by-id responses in the query function; 0 entries turns it off. */
  responseTier: {
    maxEntries: setting('QUERY_RESPONSE_CACHE_ENTRIES', int(0, 10_000_000).default(10_000)),
    maxBytes: setting('QUERY_RESPONSE_CACHE_BYTES', int(0, 4 * 1024 * 1024 * 1024).default(32 * 1024 * 1024)),
  },
} as const;

type Declared = typeof SETTINGS;
type Parsed<T> = { readonly [K in keyof T]: T[K] extends Setting<infer V> ? V : Parsed<T[K]> };
type Settings = Parsed<Declared>;

export type DatabaseConfig = Settings['database'];
export type HttpConfig = Settings['http'];
export type RecordLimits = Settings['records'];
export type StorageConfig = Settings['storage'];
export type RedisConfig = Settings['redis'];
export type CacheConfig = Settings['cache'];
export type RelayConfig = Settings['relay'];
export type GroupCommitConfig = Settings['groupCommit'];
export interface ArchiveConfig extends Omit<Settings['archive'], 'bucket'> {
  readonly bucket: string;
}

export interface KafkaConfig extends Omit<Settings['kafka'], 'saslMechanism' | 'saslUsername' | 'saslPassword'> {
  readonly sasl:
    | {
        readonly mechanism: NonNullable<Settings['kafka']['saslMechanism']>;
        readonly username: string;
        readonly password: string;
      }
    | undefined;
}

export interface TracingConfig {
  /** Undefined turns tracing off. */
  readonly otlpEndpoint: string | undefined;
  readonly sampleRatio: number;
}

export interface ServiceConfig extends Omit<Settings, 'redis' | 'kafka' | 'tracing' | 'archive'> {
  /** Undefined when neither REDIS_URL nor REDIS_CLUSTER_NODES is set: reads then go straight to PostgreSQL. */
  readonly redis: RedisConfig | undefined;
  /** Undefined without KAFKA_BROKERS: events wait in the outbox until a relay with Kafka runs. */
  readonly kafka: KafkaConfig | undefined;
  readonly tracing: TracingConfig;
  /** Undefined without S3_BUCKET: nothing is archived, and retention drops days without an archive. */
  readonly archive: ArchiveConfig | undefined;
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

type Env = Readonly<Record<string, string | undefined>>;
type Tree = { readonly [key: string]: Setting<unknown> | Tree };
const isSetting = (node: Setting<unknown> | Tree): node is Setting<unknown> => 'variable' in node && 'convert' in node;

function* settingsOf(tree: Tree): Generator<Setting<unknown>> {
  for (const node of Object.values(tree)) {
    if (isSetting(node)) yield node;
    else yield* settingsOf(node);
  }
}

const envSchema = Joi.object(
  Object.fromEntries([...settingsOf(SETTINGS as unknown as Tree)].map((s) => [s.variable, s.schema])),
).with('KAFKA_SASL_MECHANISM', ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD']);

/** Every variable the service reads, for documentation and checks (the names are declared in `SETTINGS` only). */
export const CONFIG_VARIABLES: readonly string[] = [...settingsOf(SETTINGS as unknown as Tree)].map((s) => s.variable);

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
  // Valid variables are converted even when others are not, so that cross-variable rules are reported together
  // with every other problem.
  const settings = mapTree(SETTINGS as unknown as Tree, value as Record<string, unknown>) as unknown as Settings;
  const retention = settings.storage.retentionDays;
  const pastDays = settings.records.maxPastMs / DAY_MS;
  if (retention > 0 && Number.isFinite(pastDays) && retention <= pastDays) {
    problems.push(
      `${SETTINGS.storage.retentionDays.variable} (${retention}) must exceed ${SETTINGS.records.maxPastMs.variable} (${pastDays}), or writes would land in dropped partitions`,
    );
  }
  const archiveAfter = settings.archive.afterDays;
  if (settings.archive.bucket !== undefined && Number.isFinite(pastDays) && archiveAfter <= pastDays) {
    problems.push(
      `${SETTINGS.archive.afterDays.variable} (${archiveAfter}) must exceed ${SETTINGS.records.maxPastMs.variable} (${pastDays}), or an archived day could still take writes`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const { saslMechanism, saslUsername, saslPassword, ...kafka } = settings.kafka;
  const { disabled, ...tracing } = settings.tracing;
  return deepFreeze({
    ...settings,
    redis: settings.redis.url === undefined && settings.redis.clusterNodes.length === 0 ? undefined : settings.redis,
    kafka:
      kafka.brokers.length === 0
        ? undefined
        : {
            ...kafka,
            sasl:
              saslMechanism === undefined
                ? undefined
                : { mechanism: saslMechanism, username: saslUsername ?? '', password: saslPassword ?? '' },
          },
    tracing: { ...tracing, otlpEndpoint: disabled ? undefined : tracing.otlpEndpoint },
    archive:
      settings.archive.bucket === undefined ? undefined : { ...settings.archive, bucket: settings.archive.bucket },
  });
}

function mapTree(tree: Tree, values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(tree).map(([key, node]) => [
      key,
      isSetting(node) ? node.convert(values[node.variable]) : mapTree(node, values),
    ]),
  );
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
