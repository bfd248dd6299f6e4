/** Process entry of the query function: wires PostgreSQL (and an optional read replica) and Redis into the handler. */
import { createRecordCache, createRedisClient } from '#lib/cache';
import { createDatabase, createDatabaseProbe, createRecordRepository, poolStats } from '#lib/db';
import { buildOpenApiDocument, createResponseTier } from '#lib/http';
import { createMetrics } from '#lib/observability';
import { createCursorCodec, createQueryService } from '#lib/records';
import { bootstrap, runFunction } from '#lib/runtime';
import { createQueryHandler } from './handler.ts';

const { config, logger, tracing } = bootstrap(process.env);
const metrics = createMetrics({ service: config.service, revision: config.revision });

const db = createDatabase({ ...config.database, applicationName: `${config.service}:query`, logger });
const readDb =
  config.database.readUrl === undefined
    ? db
    : createDatabase({
        ...config.database,
        url: config.database.readUrl,
        applicationName: `${config.service}:query-replica`,
        logger,
      });

const redis = config.redis && createRedisClient(config.redis, logger);
const cache =
  redis && createRecordCache({ redis, config: config.cache, keyPrefix: config.redis?.keyPrefix ?? '', logger });

const postgres = createDatabaseProbe(readDb);
metrics.pool('primary', () => poolStats(db));
if (readDb !== db) metrics.pool('replica', () => poolStats(readDb));
metrics.dependency('postgres', postgres.up);
if (cache) metrics.cache(cache.stats);

const handler = createQueryHandler({
  query: createQueryService({
    store: createRecordRepository({ db, readDb, idempotencyTtlHours: config.storage.idempotencyTtlHours }),
    cursors: createCursorCodec(config.cursorSecret),
    ...(cache && { cache }),
  }),
  logger,
  openApi: buildOpenApiDocument(config.records),
  ready: createResponseTier(config.responseTier),
});

await runFunction({
  handler,
  logger,
  functionName: 'query',
  ...config.http,
  metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
  observe: metrics.observeRequest,
  // Only PostgreSQL decides readiness: without Redis the function answers from PostgreSQL (degraded).
  readiness: postgres.ready,
  close: async () => {
    cache?.close();
    redis?.disconnect();
    await Promise.all([db.destroy(), readDb === db ? undefined : readDb.destroy()]);
    await tracing.shutdown();
  },
});
