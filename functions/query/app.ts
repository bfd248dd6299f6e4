/**
 * The query function composed from its configuration and clients, including its read chains:
 * in-process tier → Redis → PostgreSQL for records, Redis → PostgreSQL for list pages.
 */
import { buildOpenApiDocument } from '#lib/api';
import { accessGateFor } from '#lib/auth';
import {
  createRecordCache,
  createResponseTier,
  type RedisClient,
  type RedisRecordCache,
  type ResponseTier,
  redisPages,
  uncachedPages,
  withRedisRecords,
  withResponseTier,
} from '#lib/cache';
import type { ServiceConfig } from '#lib/config';
import {
  archivedDayOf,
  createDatabaseProbe,
  createRecordReader,
  createReplicaLagProbe,
  type Database,
  poolStats,
} from '#lib/db';
import type { HttpHandler } from '#lib/http';
import { createMetrics, type Logger, type Metrics } from '#lib/observability';
import {
  createCursorCodec,
  createQueryService,
  documentFromStore,
  type ListReads,
  primaryLists,
  type RecordSource,
  readYourWrites,
  replicaLists,
} from '#lib/records';
import { createQueryHandler } from './handler.ts';

export interface QueryClients {
  readonly db: Database;
  /** A read replica (DATABASE_READ_URL); reads go to `db` without it. */
  readonly readDb?: Database | undefined;
  readonly redis?: RedisClient | undefined;
}

export interface QueryApp {
  readonly handler: HttpHandler;
  readonly readiness: () => Promise<boolean>;
  readonly metrics: Metrics;
  readonly cache: RedisRecordCache | undefined;
  readonly tier: ResponseTier | undefined;
  close(): Promise<void>;
}

export function createQueryApp(config: ServiceConfig, clients: QueryClients, logger: Logger): QueryApp {
  const { db, redis } = clients;
  const readDb = clients.readDb ?? db;
  const metrics = createMetrics({ service: config.service, revision: config.revision });
  const cache =
    redis && createRecordCache({ redis, config: config.cache, keyPrefix: config.redis?.keyPrefix ?? '', logger });
  // With a replica, a by-id miss is asked of the primary (read-your-writes after a 201); lists read the replica
  // while its lag, probed every second off the request path, stays within DATABASE_READ_MAX_STALENESS_SECONDS.
  const primaryReader = createRecordReader(db);
  const replicaReader = readDb === db ? undefined : createRecordReader(readDb);
  const reader = replicaReader === undefined ? primaryReader : readYourWrites(replicaReader, primaryReader);
  const lag = readDb === db ? undefined : createReplicaLagProbe({ primary: db, replica: readDb, logger });
  const lists: ListReads =
    replicaReader === undefined || lag === undefined
      ? primaryLists(primaryReader)
      : replicaLists(replicaReader, primaryReader, lag, config.database.readMaxStalenessSeconds);

  let records: RecordSource = documentFromStore(reader);
  if (cache) records = withRedisRecords(cache, records);
  const tier = config.responseTier.maxEntries > 0 ? createResponseTier(config.responseTier) : undefined;
  if (tier) records = withResponseTier(tier, records);

  const gate = accessGateFor({ ...config, redis, keyPrefix: config.redis?.keyPrefix ?? '', logger });
  metrics.rateLimited(gate.limited);
  const postgres = createDatabaseProbe(readDb);
  metrics.pool('primary', () => poolStats(db));
  if (readDb !== db) metrics.pool('replica', () => poolStats(readDb));
  if (lag) metrics.replica(() => ({ lagSeconds: lag.boundSeconds(), listReads: lists.counts() }));
  metrics.dependency('postgres', postgres.up);
  if (cache) metrics.cache(cache.stats);

  return {
    handler: createQueryHandler({
      query: createQueryService({
        records,
        // A page read from a lagging replica must not be stored under the newer version the primary has already
        // announced (it would be served as current until the next write): with a replica, pages are not cached.
        pages: cache && readDb === db ? redisPages(cache) : uncachedPages,
        reader,
        lists,
        cursors: createCursorCodec(config.cursorSecret),
        maxPageBytes: config.list.maxBytes,
        archive: config.archive && { dayOf: (id: string) => archivedDayOf(readDb, id) },
      }),
      logger,
      openApi: () => buildOpenApiDocument(config.records),
      gate,
      cors: config.cors,
    }),
    // Only PostgreSQL decides readiness: without Redis the function answers from PostgreSQL (degraded).
    readiness: postgres.ready,
    metrics,
    cache,
    tier,
    async close() {
      lag?.close();
      cache?.close();
    },
  };
}
