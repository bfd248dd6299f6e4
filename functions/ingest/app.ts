/**
 * The ingest function composed from its configuration and clients: the one place where its parts are wired.
 * `main.ts` (production) and the tests both build it here.
 */
import { buildOpenApiDocument } from '#lib/api';
import { accessGateFor } from '#lib/auth';
import { createRecordCache, type RedisClient, type RedisRecordCache } from '#lib/cache';
import type { ServiceConfig } from '#lib/config';
import {
  archiveStatus,
  createDatabaseProbe,
  createOutboxRepository,
  createRecordWriter,
  type Database,
  partitionPlanFrom,
  poolStats,
  schedulePartitionMaintenance,
} from '#lib/db';
import { createOutboxRelay, type EventPublisher, type OutboxRelay } from '#lib/events';
import type { HttpHandler } from '#lib/http';
import { createMetrics, type Logger, type Metrics } from '#lib/observability';
import { createGroupCommitStore, createIngestService, createRecordValidator, notifyingWrites } from '#lib/records';
import { createIngestHandler } from './handler.ts';

/** What the ingest function is given; `main.ts` creates them and closes them after the app. */
export interface IngestClients {
  readonly db: Database;
  readonly redis?: RedisClient | undefined;
  /** The Kafka producer the outbox relay publishes with; without it events wait in the outbox. */
  readonly publisher?: EventPublisher | undefined;
}

export interface IngestApp {
  readonly handler: HttpHandler;
  readonly readiness: () => Promise<boolean>;
  readonly metrics: Metrics;
  /** The outbox relay running in this function, when it has a publisher and RELAY_ENABLED. */
  readonly relay: OutboxRelay | undefined;
  readonly cache: RedisRecordCache | undefined;
  /**
   * Keeps partitions ahead (it waits for the missing days of the write window, a few seconds at most; retention
   * runs after it in the background) and starts the relay.
   */
  start(options?: { readonly maintenance?: boolean; readonly relay?: boolean }): Promise<void>;
  /** Stops what the app started (maintenance, relay, cache timers); the clients stay for main.ts to close. */
  close(): Promise<void>;
}

export function createIngestApp(config: ServiceConfig, clients: IngestClients, logger: Logger): IngestApp {
  const { db, redis, publisher } = clients;
  const metrics = createMetrics({ service: config.service, revision: config.revision });
  const cache =
    redis && createRecordCache({ redis, config: config.cache, keyPrefix: config.redis?.keyPrefix ?? '', logger });
  const outbox = createOutboxRepository(db);
  const relay =
    publisher && config.relay.enabled
      ? createOutboxRelay({ store: outbox, publisher, logger, ...config.relay })
      : undefined;
  if (publisher === undefined) {
    logger.warn('KAFKA_BROKERS is not set: record events wait in the outbox until a relay with Kafka runs');
  }

  // Innermost first: the PostgreSQL writer; then, per committed batch, the cache's invalidations; then group
  // commit, which coalesces concurrent requests into one batch (one INSERT, one commit, one invalidation).
  let writer = createRecordWriter({
    db,
    idempotencyTtlHours: config.storage.idempotencyTtlHours,
    onCommitted: () => relay?.nudge(),
    // Each is a day maintenance should have made: said, so that a stalled schedule is seen before it matters.
    onPartitionCreated: (names) =>
      logger.warn({ partitions: names }, 'a write found no partition for its day and created it'),
  });
  if (cache) writer = notifyingWrites(writer, cache);
  if (config.groupCommit.enabled) writer = createGroupCommitStore(writer, config.groupCommit, metrics.observeBatch);

  const gate = accessGateFor({ ...config, redis, keyPrefix: config.redis?.keyPrefix ?? '', logger });
  metrics.rateLimited(gate.limited);
  const postgres = createDatabaseProbe(db);
  metrics.pool('primary', () => poolStats(db));
  metrics.dependency('postgres', postgres.up);
  if (cache) metrics.cache(cache.stats);
  if (relay) {
    metrics.dependency('kafka', () => relay.status().brokerReachable);
    metrics.relay(() => {
      const { eventsPublished, publishErrors, eventsDeadLettered } = relay.status();
      return { published: eventsPublished, errors: publishErrors, deadLettered: eventsDeadLettered };
    });
  }
  metrics.outbox(() => outbox.backlog());
  const archive = config.archive;
  if (archive) metrics.archive(() => archiveStatus(db, archive.afterDays));

  let maintenance: { stop(): Promise<void> } | undefined;
  return {
    handler: createIngestHandler({
      ingest: createIngestService({
        writer,
        validator: createRecordValidator(config.records),
        deadlineMs: config.groupCommit.deadlineMs,
      }),
      logger,
      openApi: () => buildOpenApiDocument(config.records),
      gate,
      cors: config.cors,
    }),
    // Only PostgreSQL decides readiness: without Redis or Kafka the function still accepts writes (degraded).
    readiness: postgres.ready,
    metrics,
    relay,
    cache,
    async start(options = {}) {
      if (options.maintenance !== false) {
        // Partitions should exist before the first write of each day; every pod keeps them ahead, serialised by a
        // lock. The start waits for the write window's days only, and only so long (`firstRun` is bounded): a pod is
        // not held unready by another pod's run or a slow database, and a write that finds no partition creates its
        // day itself. Connected as ds_ingest (production) it may not maintain: that is logged once and the CronJob
        // does it (docs/security.md).
        const scheduled = schedulePartitionMaintenance(db, partitionPlanFrom(config), logger);
        maintenance = scheduled;
        await scheduled.firstRun;
      }
      if (options.relay !== false) relay?.start();
    },
    async close() {
      // Side by side: the relay publishes what it can within its 5 s (knative/README.md, Shutdown), and a
      // maintenance run under way ends after its current statement. The pool's destroy would wait for that
      // statement anyway (tarn waits for connections in use); an hourly run's statement is short, and each is
      // bounded by statement_timeout.
      await Promise.all([maintenance?.stop(), relay?.stop(5_000)]);
      cache?.close();
    },
  };
}
