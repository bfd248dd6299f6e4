/** Process entry of the ingest function: wires PostgreSQL into the handler and serves it on $PORT. */
import {
  createDatabase,
  createRecordRepository,
  partitionPlanFrom,
  pingDatabase,
  schedulePartitionMaintenance,
} from '#lib/db';
import { buildOpenApiDocument } from '#lib/http';
import { createIngestService, createRecordValidator } from '#lib/records';
import { bootstrap, runFunction } from '#lib/runtime';
import { createIngestHandler } from './handler.ts';

const { config, logger } = bootstrap(process.env);

const db = createDatabase({ ...config.database, applicationName: `${config.service}:ingest`, logger });
// Partitions must exist before the first write of each day; every pod keeps them ahead, serialised by a lock.
const maintenance = schedulePartitionMaintenance(db, partitionPlanFrom(config), logger);
await maintenance.firstRun;

const handler = createIngestHandler({
  ingest: createIngestService({
    store: createRecordRepository({ db, idempotencyTtlHours: config.storage.idempotencyTtlHours }),
    validator: createRecordValidator(config.records),
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
  readiness: () => pingDatabase(db).then(() => true),
  close: async () => {
    maintenance.stop();
    await db.destroy();
  },
});
