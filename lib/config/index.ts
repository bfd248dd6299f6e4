/**
 * Environment → one frozen, typed, validated configuration object. Only a process entry (`main.ts`, scripts)
 * calls `loadConfig(process.env)`; everything else receives the slice it needs.
 *
 * Each variable is declared once, in `SETTINGS`: its name, its joi schema (type, bounds, default) and where its
 * value goes. The types below are derived from that declaration, and so is the validation, which reports every
 * bad variable in one message.
 */
import { randomBytes } from 'node:crypto';
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
// The algorithms a token may be signed with: asymmetric only (an HMAC "verified" with a public key is forgeable).
export const TOKEN_ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
] as const;
export type TokenAlgorithmName = (typeof TOKEN_ALGORITHMS)[number];
const HOST_PORT_LIST = /^[\w.-]+:\d{1,5}(,[\w.-]+:\d{1,5})*$/;
/**
 * A URL with one of `schemes`, parsed as Node parses it when the clients connect (WHATWG URL). Not joi's `uri()`:
 * it builds its RFC 3986 regular expression on first use, most of the 25–35 ms a function's start spent checking
 * its configuration (measured by timing a first and a second `loadConfig`).
 */
const url = (...schemes: readonly string[]) =>
  Joi.string().custom((value: string, helpers) => {
    if (!URL.canParse(value)) return helpers.error('string.uri');
    const scheme = new URL(value).protocol.slice(0, -1);
    return schemes.includes(scheme) ? value : helpers.error('string.uriCustomScheme', { scheme: schemes.join('|') });
  });
const postgresUrl = () => url('postgres', 'postgresql');
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
    /** Lists and exports read the primary while the replica may trail it by more than this (docs/data-flow.md). */
    readMaxStalenessSeconds: setting('DATABASE_READ_MAX_STALENESS_SECONDS', int(1, 86_400).default(30)),
    poolMax: setting('DATABASE_POOL_MAX', int(1, 1000).default(10)),
    connectTimeoutMs: setting('DATABASE_CONNECT_TIMEOUT_MS', int(100, 60_000).default(2_000)),
    statementTimeoutMs: setting('DATABASE_STATEMENT_TIMEOUT_MS', int(100, 600_000).default(10_000)),
  },
  http: {
    host: setting('HOST', Joi.string().hostname().default('0.0.0.0')),
    port: setting('PORT', Joi.number().port().default(8080)),
    bodyLimitBytes: setting('BODY_LIMIT_BYTES', int(1024, 64 * 1024 * 1024).default(1024 * 1024)),
    /** Answers this large and larger (list pages; never a record, which has an ETag) go out compressed; 0: never. */
    compressMinBytes: setting('RESPONSE_COMPRESSION_MIN_BYTES', int(0, 64 * 1024 * 1024).default(8 * 1024)),
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
  list: {
    /** A list page ends early, with `next_cursor`, once its records' JSON holds this many bytes (at least one record). */
    maxBytes: setting('LIST_MAX_BYTES', int(1_024, 256 * 1024 * 1024).default(4 * 1024 * 1024)),
  },
  storage: {
    /** Daily partitions created ahead of today. */
    partitionPrecreateDays: setting('PARTITION_PRECREATE_DAYS', int(1, 365).default(7)),
    /** Drop partitions older than this many days; 0 keeps everything. */
    retentionDays: setting('RETENTION_DAYS', int(0, 36_500).default(0)),
    idempotencyTtlHours: setting('IDEMPOTENCY_TTL_HOURS', int(1, 24 * 30).default(24)),
  },
  /** Authenticates cursors; required by query in a cluster (K_SERVICE set), a random one per process otherwise. */
  cursorSecret: optional('CURSOR_SECRET', Joi.string().min(16)),
  auth: {
    /** `jwt` (the default) needs the three settings below; `none` serves everyone everything, and says so. */
    mode: setting('AUTH_MODE', Joi.string<'jwt' | 'none'>().valid('jwt', 'none').default('jwt')),
    jwksUrl: optional('AUTH_JWKS_URL', url('http', 'https')),
    issuer: optional('AUTH_ISSUER', Joi.string().max(1_000)),
    audience: optional('AUTH_AUDIENCE', Joi.string().max(1_000)),
    algorithms: converted(
      'AUTH_ALGORITHMS',
      Joi.string()
        .pattern(new RegExp(`^(${TOKEN_ALGORITHMS.join('|')})(,(${TOKEN_ALGORITHMS.join('|')}))*$`))
        .messages({ 'string.pattern.base': `AUTH_ALGORITHMS must be a comma-separated list of ${TOKEN_ALGORITHMS}` })
        .default('ES256,RS256'),
      list,
    ),
    clockToleranceSeconds: setting('AUTH_CLOCK_TOLERANCE_SECONDS', int(0, 300).default(30)),
    scopeClaim: setting(
      'AUTH_SCOPE_CLAIM',
      Joi.string()
        .pattern(/^[\w.:-]{1,100}$/)
        .default('scope'),
    ),
    /** Verified tokens remembered by digest (0: verify every request), each at most this long and never past exp. */
    tokenCacheEntries: setting('AUTH_TOKEN_CACHE_ENTRIES', int(0, 1_000_000).default(10_000)),
    tokenCacheSeconds: setting('AUTH_TOKEN_CACHE_SECONDS', int(1, 3_600).default(60)),
    jwksRefreshSeconds: setting('AUTH_JWKS_REFRESH_SECONDS', int(10, 86_400).default(600)),
    /** Least time between two key-set fetches: a token with an unknown kid cannot make us fetch more often. */
    jwksCooldownSeconds: setting('AUTH_JWKS_COOLDOWN_SECONDS', int(1, 3_600).default(30)),
    jwksTimeoutMs: setting('AUTH_JWKS_TIMEOUT_MS', int(100, 60_000).default(2_000)),
  },
  /** Origins whose pages may call the API from a browser (CORS): exact `scheme://host[:port]`, or `*`. */
  cors: {
    allowedOrigins: converted(
      'CORS_ALLOWED_ORIGINS',
      Joi.string()
        .pattern(/^(\*|https?:\/\/[^\s/,]+)(,(\*|https?:\/\/[^\s/,]+))*$/)
        .messages({
          'string.pattern.base':
            'CORS_ALLOWED_ORIGINS must be a comma-separated list of origins (https://app.example.com) or *',
        }),
      list,
    ),
    maxAgeSeconds: setting('CORS_MAX_AGE_SECONDS', int(0, 86_400).default(600)),
  },
  /** Requests per caller (token subject) across pods; 0 turns the limit off. Not applied while AUTH_MODE=none. */
  rateLimit: {
    perSecond: setting('RATE_LIMIT_PER_SECOND', int(0, 10_000_000).default(1_000)),
    /** The most requests allowed in one second; the excess over the steady rate renews every burst window. */
    burst: setting('RATE_LIMIT_BURST', int(0, 10_000_000).default(2_000)),
    burstWindowSeconds: setting('RATE_LIMIT_BURST_WINDOW_SECONDS', int(1, 3_600).default(10)),
  },
  redis: {
    /** `redis://` or `rediss://` URL of a standalone server (ElastiCache without cluster mode). */
    url: optional('REDIS_URL', url('redis', 'rediss')),
    /** `host:port` seed nodes of a Redis Cluster (ElastiCache cluster mode); wins over `url`. */
    clusterNodes: converted('REDIS_CLUSTER_NODES', hostPorts('REDIS_CLUSTER_NODES'), list),
    tls: setting('REDIS_TLS', flag().default(false)),
    /**
     * AUTH for either mode (ACL user, or the `requirepass` password alone): a cluster has no URL to carry them, and
     * a standalone server's secret need not sit in REDIS_URL (user info in the URL, if any, takes precedence).
     */
    username: optional('REDIS_USERNAME', Joi.string().max(256)),
    password: optional('REDIS_PASSWORD', Joi.string().max(1_024)),
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
    /** Nothing larger goes to Redis (a list page above it is served, just not cached). */
    valueMaxBytes: setting('CACHE_VALUE_MAX_BYTES', int(1_024, 512 * 1024 * 1024).default(1024 * 1024)),
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
    /**
     * Outbox events claimed per relay round (one transaction; split into produce requests by bytes). 2,000 drains
     * a backlog of ~1 KiB events 1.5× faster than 500 at less CPU per event (docs/benchmarks.md, bench:relay).
     */
    batchSize: setting('RELAY_BATCH_SIZE', int(1, 10_000).default(2_000)),
    /**
     * Bytes of event text claimed per round: a claim stops at the first event that crosses it (so it always holds
     * at least one), which bounds the relay's memory and transaction whatever the events weigh.
     */
    batchBytes: setting('RELAY_BATCH_BYTES', int(1_024, 256 * 1024 * 1024).default(4 * 1024 * 1024)),
    /**
     * Cap of one partition's record batch in a produce request, beside the broker's `message.max.bytes` (the
     * topic's `max.message.bytes`, read from the broker at connect): the smaller of the two applies. Unset means
     * the broker's value; where describeConfigs is not allowed, Kafka's default 1 MiB.
     */
    maxRequestBytes: optional('RELAY_MAX_REQUEST_BYTES', int(1_024, 1024 * 1024 * 1024)),
    pollIntervalMs: setting('RELAY_POLL_INTERVAL_MS', int(5, 60_000).default(100)),
    maxBackoffMs: setting('RELAY_MAX_BACKOFF_MS', int(100, 600_000).default(5_000)),
  },
  groupCommit: {
    enabled: setting('GROUP_COMMIT_ENABLED', flag().default(true)),
    maxBatchRecords: setting('GROUP_COMMIT_MAX_RECORDS', int(1, 100_000).default(1_000)),
    windowMs: setting('GROUP_COMMIT_WINDOW_MS', int(0, 1_000).default(1)),
    concurrency: setting('GROUP_COMMIT_CONCURRENCY', int(1, 100).default(2)),
    maxQueuedRecords: setting('GROUP_COMMIT_MAX_QUEUED_RECORDS', int(1, 10_000_000).default(20_000)),
    /**
     * How long a write may take before its client is answered 503; past it a queued or uncommitted write is
     * dropped, never committed later (the client may retry). Below Knative's 60 s request timeout.
     */
    deadlineMs: setting('WRITE_DEADLINE_MS', int(100, 600_000).default(10_000)),
  },
  tracing: {
    /** OTLP/HTTP endpoint; unset (or OTEL_SDK_DISABLED) turns tracing off: no spans, no cost. */
    otlpEndpoint: optional('OTEL_EXPORTER_OTLP_ENDPOINT', url('http', 'https')),
    /** Share of traces started here that are sampled; callers' sampled flags are honoured (parent-based). */
    sampleRatio: setting('OTEL_TRACES_SAMPLER_ARG', Joi.number().min(0).max(1).default(0.01)),
    /** Whether a caller's sampled `traceparent` flag decides sampling; off, the internet cannot force 100 %. */
    trustIncoming: setting('OTEL_TRUST_INCOMING_SAMPLING', flag().default(false)),
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
    endpoint: optional('S3_ENDPOINT', url('http', 'https')),
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
export type ListConfig = Settings['list'];
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
  readonly trustIncoming: boolean;
}

type AuthSettings = Settings['auth'];
export type AuthConfig =
  | { readonly mode: 'none' }
  | (Omit<AuthSettings, 'mode' | 'jwksUrl' | 'issuer' | 'audience' | 'algorithms'> & {
      readonly mode: 'jwt';
      readonly jwksUrl: string;
      readonly issuer: string;
      readonly audience: string;
      readonly algorithms: readonly TokenAlgorithmName[];
    });
export type RateLimitConfig = Settings['rateLimit'];

export interface ServiceConfig
  extends Omit<Settings, 'redis' | 'kafka' | 'tracing' | 'auth' | 'cursorSecret' | 'archive'> {
  readonly auth: AuthConfig;
  readonly cursorSecret: string;
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
)
  .with('KAFKA_SASL_MECHANISM', ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'])
  .with('REDIS_USERNAME', 'REDIS_PASSWORD');

/** Every variable the service reads, for documentation and checks (the names are declared in `SETTINGS` only). */
export const CONFIG_VARIABLES: readonly string[] = [...settingsOf(SETTINGS as unknown as Tree)].map((s) => s.variable);

export interface LoadOptions {
  /**
   * Whether the process serves the API (ingest, query: the default). One that does not (migrate, relay) needs no
   * token issuer, and gets `auth: { mode: 'none' }`.
   */
  readonly servesApi?: boolean;
  /** Whether the process issues list cursors (query): in a cluster it then needs the shared CURSOR_SECRET. */
  readonly issuesCursors?: boolean;
}

/** Parses and validates the environment; throws a `ConfigError` naming every bad variable. */
export function loadConfig(env: Env, { servesApi = true, issuesCursors = false }: LoadOptions = {}): ServiceConfig {
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
  // Partitions exist through PARTITION_PRECREATE_DAYS days ahead after each (hourly) maintenance run; one day of
  // them is kept as the margin for runs that fail, so a record as far ahead as is accepted always finds its day.
  const futureHours = settings.records.maxFutureMs / 3_600_000;
  const aheadDays = settings.storage.partitionPrecreateDays;
  if (Number.isFinite(futureHours) && Number.isInteger(aheadDays) && futureHours > (aheadDays - 1) * 24) {
    problems.push(
      `${SETTINGS.records.maxFutureMs.variable} (${futureHours}) must be at most (${SETTINGS.storage.partitionPrecreateDays.variable} − 1) × 24 = ${(aheadDays - 1) * 24}, or a record accepted that far ahead could find no partition for its day`,
    );
  }
  const { auth } = settings;
  const missing = [
    auth.jwksUrl === undefined && 'AUTH_JWKS_URL',
    auth.issuer === undefined && 'AUTH_ISSUER',
    auth.audience === undefined && 'AUTH_AUDIENCE',
  ].filter((name): name is string => typeof name === 'string');
  if (servesApi && auth.mode === 'jwt' && missing.length > 0) {
    problems.push(
      `AUTH_MODE is jwt (the default) but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not set: configure the token issuer, or set AUTH_MODE=none to serve without authentication`,
    );
  }
  if (settings.rateLimit.burst > 0 && settings.rateLimit.burst < settings.rateLimit.perSecond) {
    problems.push('RATE_LIMIT_BURST must be at least RATE_LIMIT_PER_SECOND (or 0 for no burst)');
  }
  // No built-in secret: in a cluster every query pod must share one, or cursors fail across pods.
  if (issuesCursors && settings.cursorSecret === undefined && present.K_SERVICE !== undefined) {
    problems.push('CURSOR_SECRET is required in a cluster (K_SERVICE is set): every query pod must share it');
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
  const { mode, jwksUrl, issuer, audience, algorithms, ...verification } = auth;
  return deepFreeze({
    ...settings,
    cursorSecret: settings.cursorSecret ?? randomBytes(32).toString('base64url'),
    auth:
      mode === 'none' || !servesApi
        ? { mode: 'none' }
        : {
            mode,
            jwksUrl: jwksUrl ?? '',
            issuer: issuer ?? '',
            audience: audience ?? '',
            algorithms: algorithms as readonly TokenAlgorithmName[],
            ...verification,
          },
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
