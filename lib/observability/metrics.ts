import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  /** Registers a dependency whose health is read at scrape time (1 up, 0 down). */
  dependency(name: string, isUp: () => boolean): void;
  /** Registers the Redis cache: `dependency_up{redis}`, lookups by result and breaker state, read at scrape time. */
  cache(read: () => { hits: number; misses: number; errorsOrSkips: number; breaker: string; connected: boolean }): void;
  /** Registers the outbox backlog and the dead letters kept, read (and cached) at scrape time. */
  outbox(read: () => Promise<{ rows: number; oldestAgeMs: number; deadLetters: number }>): void;
  relay(read: () => { published: number; errors: number; deadLettered: number }): void;
  /** Registers the access gate's count of requests refused by the per-caller rate limit. */
  rateLimited(read: () => number): void;
  /** Registers the S3 archive's state (read from PostgreSQL at scrape time, at most every 10 s). */
  archive(
    read: () => Promise<{
      verifiedDays: number;
      bytes: number;
      lastSuccessAgeSeconds: number | undefined;
      backlogDays: number;
    }>,
  ): void;
  /**
   * Registers a read replica: its lag bound (+Inf while not known) and the lists and exports read from each
   * database, read at scrape time.
   */
  replica(read: () => { lagSeconds: number | undefined; listReads: { primary: number; replica: number } }): void;
  /** Records one finished HTTP request (route is a template: bounded cardinality). */
  observeRequest(sample: { route: string; method: string; status: number; durationSeconds: number }): void;
  /** Registers a connection pool read at scrape time. */
  pool(name: string, read: () => { used: number; free: number; pending: number; max: number }): void;
  /** Records one group-commit batch. */
  observeBatch(records: number, waitedMs: number): void;
}

// Fine around the 500 ms SLO (0.25–1 s), and down to the few milliseconds a cached read takes.
const LATENCY_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10];

const PREFIX = 'data_service_';

/**
 * The function's Prometheus registry: process defaults plus health and data-flow series that are read from
 * their owners at scrape time, so the hot path pays nothing for them.
 */
export function createMetrics(labels: { service: string; revision: string }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry });

  const dependencies = new Map<string, () => boolean>();
  new Gauge({
    name: `${PREFIX}dependency_up`,
    help: 'Whether a backing service is reachable (1) or not (0); Redis and Kafka down mean degraded, not unready.',
    labelNames: ['dependency'],
    registers: [registry],
    collect() {
      for (const [name, isUp] of dependencies) this.set({ dependency: name }, isUp() ? 1 : 0);
    },
  });

  const requestDuration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'Time from request received to response finished, by route template, method and status.',
    labelNames: ['route', 'method', 'status'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const requestSeries = new Map<string, { observe(value: number): void }>();
  const batchSize = new Histogram({
    name: `${PREFIX}group_commit_batch_records`,
    help: 'Records per group-commit batch (one INSERT and one commit).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
    registers: [registry],
  });
  const batchWait = new Histogram({
    name: `${PREFIX}group_commit_wait_seconds`,
    help: 'How long the oldest request of a batch waited before its batch started.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const pools = new Map<string, () => { used: number; free: number; pending: number; max: number }>();
  const poolGauge = (
    name: string,
    help: string,
    pick: (p: { used: number; free: number; pending: number; max: number }) => number,
  ) =>
    new Gauge({
      name: `${PREFIX}db_pool_${name}`,
      help,
      labelNames: ['pool'],
      registers: [registry],
      collect() {
        for (const [pool, read] of pools) this.set({ pool }, pick(read()));
      },
    });
  poolGauge('connections_in_use', 'Pooled database connections checked out.', (p) => p.used);
  poolGauge('connections_idle', 'Pooled database connections open and idle.', (p) => p.free);
  poolGauge('waiting_requests', 'Requests waiting for a pooled connection (saturation).', (p) => p.pending);
  poolGauge('connections_max', 'Pool size limit.', (p) => p.max);

  return {
    registry,
    observeRequest: ({ route, method, status, durationSeconds }) => {
      // One child per label combination, found by one string key: no label object hashed per request.
      const key = `${route}\u0000${method}\u0000${status}`;
      let child = requestSeries.get(key);
      if (child === undefined) {
        child = requestDuration.labels(route, method, String(status));
        requestSeries.set(key, child);
      }
      child.observe(durationSeconds);
    },
    pool: (name, read) => {
      pools.set(name, read);
    },
    observeBatch: (records, waitedMs) => {
      batchSize.observe(records);
      batchWait.observe(waitedMs / 1000);
    },
    dependency: (name, isUp) => {
      dependencies.set(name, isUp);
    },
    cache(read) {
      dependencies.set('redis', () => {
        const { connected, breaker } = read();
        return connected && breaker !== 'open';
      });
      new Gauge({
        name: `${PREFIX}cache_breaker_open`,
        help: 'Whether the circuit breaker in front of Redis is open (1: lookups skip Redis) or not (0; half-open counts as 0).',
        registers: [registry],
        collect() {
          this.set(read().breaker === 'open' ? 1 : 0);
        },
      });
      new Counter({
        name: `${PREFIX}cache_requests_total`,
        help: 'Cache lookups by result: hit (record, absence or page found), miss, skipped (Redis down or breaker open).',
        labelNames: ['result'],
        registers: [registry],
        collect() {
          const { hits, misses, errorsOrSkips: skipped } = read();
          this.reset();
          this.inc({ result: 'hit' }, hits);
          this.inc({ result: 'miss' }, misses);
          this.inc({ result: 'skipped' }, skipped);
        },
      });
    },
    outbox(read) {
      // The gauges are collected in parallel by one scrape; they share one query per second.
      const figures = sharedRead(read, 1_000);
      let last = { rows: 0, oldestAgeMs: 0, deadLetters: 0 };
      const refresh = async () => {
        last = (await figures()) ?? last;
      };
      new Gauge({
        name: `${PREFIX}outbox_backlog_rows`,
        help: 'Record events committed but not yet acknowledged by Kafka.',
        registers: [registry],
        async collect() {
          await refresh();
          this.set(last.rows);
        },
      });
      new Gauge({
        name: `${PREFIX}outbox_oldest_age_seconds`,
        help: 'Age of the oldest unpublished outbox event: the event publish lag.',
        registers: [registry],
        async collect() {
          await refresh();
          this.set(last.oldestAgeMs / 1000);
        },
      });
      new Gauge({
        name: `${PREFIX}outbox_dead_letter_rows`,
        help: 'Events kept in outbox_dead_letter: each alone exceeds the topic max.message.bytes and never reached Kafka.',
        registers: [registry],
        async collect() {
          await refresh();
          this.set(last.deadLetters);
        },
      });
    },
    archive(read) {
      type Figures = Awaited<ReturnType<typeof read>>;
      // Four gauges, one scrape, one read; the figures change once a day, so 10 s of staleness costs nothing.
      const figures = sharedRead(read, 10_000);
      let last: Figures | undefined;
      const refresh = async () => {
        last = (await figures()) ?? last;
      };
      const gauge = (name: string, help: string, pick: (f: Figures) => number | undefined) =>
        new Gauge({
          name: `${PREFIX}archive_${name}`,
          help,
          registers: [registry],
          async collect() {
            await refresh();
            const value = last === undefined ? undefined : pick(last);
            // No sample rather than a made-up one: before the first success there is no age.
            if (value === undefined) this.reset();
            else this.set(value);
          },
        });
      gauge(
        'verified_days',
        'Days whose S3 archive is verified (retention may drop their partitions).',
        (f) => f.verifiedDays,
      );
      gauge('bytes', 'Bytes of Parquet objects in S3 for the verified days.', (f) => f.bytes);
      gauge(
        'last_success_age_seconds',
        'Seconds since a day was last archived and verified.',
        (f) => f.lastSuccessAgeSeconds,
      );
      gauge(
        'backlog_days',
        'Partitions older than ARCHIVE_AFTER_DAYS whose archive is not verified yet: retention keeps them.',
        (f) => f.backlogDays,
      );
    },
    relay(read) {
      new Counter({
        name: `${PREFIX}events_published_total`,
        help: 'Record events acknowledged by Kafka.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read().published);
        },
      });
      new Counter({
        name: `${PREFIX}events_dead_lettered_total`,
        help: 'Record events moved to outbox_dead_letter because alone they exceed the topic max.message.bytes.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read().deadLettered);
        },
      });
      new Counter({
        name: `${PREFIX}event_publish_errors_total`,
        help: 'Failed attempts to publish an outbox batch to Kafka.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read().errors);
        },
      });
    },
    replica(read) {
      new Gauge({
        name: `${PREFIX}replica_lag_seconds`,
        help: 'Seconds a read of the replica may trail the primary now (the Data-Staleness of a list read from it); +Inf while not known.',
        registers: [registry],
        collect() {
          // An unknown bound is an unbounded one: +Inf keeps "lag above N" alerts firing rather than going silent.
          this.set(read().lagSeconds ?? Number.POSITIVE_INFINITY);
        },
      });
      new Counter({
        name: `${PREFIX}list_reads_total`,
        help: 'Lists and exports by the database they read: replica, or primary while the replica lags beyond DATABASE_READ_MAX_STALENESS_SECONDS.',
        labelNames: ['database'],
        registers: [registry],
        collect() {
          const { primary, replica } = read().listReads;
          this.reset();
          this.inc({ database: 'primary' }, primary);
          this.inc({ database: 'replica' }, replica);
        },
      });
    },
    rateLimited(read) {
      new Counter({
        name: `${PREFIX}rate_limited_requests_total`,
        help: 'Requests refused with 429 because their caller exceeded its rate limit.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    },
  };
}

/**
 * `read`, shared by the gauges of one scrape and asked again only once `maxAgeMs` has passed: the figures of its
 * last success, or undefined while it fails (the gauges keep what they had).
 */
function sharedRead<T>(read: () => Promise<T>, maxAgeMs: number): () => Promise<T | undefined> {
  let latest: { at: number; value: Promise<T | undefined> } | undefined;
  return () => {
    if (latest === undefined || Date.now() - latest.at > maxAgeMs) {
      latest = { at: Date.now(), value: read().catch(() => undefined) };
    }
    return latest.value;
  };
}
