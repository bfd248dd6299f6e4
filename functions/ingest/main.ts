/** Process entry of the ingest function: wires PostgreSQL, Redis and the outbox relay to Kafka, serves on $PORT. */
import { createRecordCache, createRedisClient } from '#lib/cache';
import {
  createDatabase,
  createDatabaseProbe,
  createOutboxRepository,
  createRecordRepository,
  partitionPlanFrom,
  poolStats,
  schedulePartitionMaintenance,
} from '#lib/db';
import { createKafkaPublisher, createOutboxRelay } from '#lib/events';
import { buildOpenApiDocument } from '#lib/http';
import { createMetrics } from '#lib/observability';
import { createGroupCommitStore, createIngestService, createRecordValidator } from '#lib/records';
import { bootstrap, runFunction } from '#lib/runtime';
import { createIngestHandler } from './handler.ts';

const { config, logger, tracing } = bootstrap(process.env);
const metrics = createMetrics({ service: config.service, revision: config.revision });

const db = createDatabase({ ...config.database, applicationName: `${config.service}:ingest`, logger });
// Partitions must exist before the first write of each day; every pod keeps them ahead, serialised by a lock.
const maintenance = schedulePartitionMaintenance(db, partitionPlanFrom(config), logger);
await maintenance.firstRun;

const redis = config.redis && createRedisClient(config.redis, logger);
const cache =
  redis && createRecordCache({ redis, config: config.cache, keyPrefix: config.redis?.keyPrefix ?? '', logger });

const outbox = createOutboxRepository(db);
const publisher = config.kafka && createKafkaPublisher({ config: config.kafka, logger });
const relay =
  publisher && config.relay.enabled
    ? createOutboxRelay({ store: outbox, publisher, logger, ...config.relay })
    : undefined;
if (config.kafka === undefined) {
  logger.warn('KAFKA_BROKERS is not set: record events wait in the outbox until a relay with Kafka runs');
}
relay?.start();

const postgres = createDatabaseProbe(db);
metrics.pool('primary', () => poolStats(db));
metrics.dependency('postgres', postgres.up);
if (cache) metrics.cache(cache.stats);
if (relay) {
  metrics.dependency('kafka', () => relay.status().brokerReachable);
  metrics.relay(() => ({ published: relay.status().eventsPublished, errors: relay.status().publishErrors }));
}
metrics.outbox(() => outbox.backlog());

const repository = createRecordRepository({
  db,
  idempotencyTtlHours: config.storage.idempotencyTtlHours,
  onCommitted: () => relay?.nudge(),
});
// Concurrent requests share one INSERT, one outbox row and one commit per batch.
const store = config.groupCommit.enabled
  ? createGroupCommitStore(repository, config.groupCommit, metrics.observeBatch)
  : repository;

const handler = createIngestHandler({
  ingest: createIngestService({
    store,
    validator: createRecordValidator(config.records),
    ...(cache && { cache }),
  }),
  logger,
  openApi: buildOpenApiDocument(config.records),
  bodyLimitBytes: config.http.bodyLimitBytes,
});

await runFunction({
  handler,
  logger,
  functionName: 'ingest',
  ...config.http,
  metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
  observe: metrics.observeRequest,
  // Only PostgreSQL decides readiness: without Redis or Kafka the function still accepts writes (degraded).
  readiness: postgres.ready,
  close: async () => {
    maintenance.stop();
    await relay?.stop(5_000);
    await publisher?.close();
    cache?.close();
    redis?.disconnect();
    await db.destroy();
    await tracing.shutdown();
  },
});
