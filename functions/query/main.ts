/** Process entry of the query function: wires PostgreSQL (and an optional read replica) into the handler. */
import { createDatabase, createRecordRepository, pingDatabase } from '#lib/db';
import { buildOpenApiDocument } from '#lib/http';
import { createCursorCodec, createQueryService } from '#lib/records';
import { bootstrap, runFunction } from '#lib/runtime';
import { createQueryHandler } from './handler.ts';

const { config, logger } = bootstrap(process.env);

const db = createDatabase({ ...config.database, applicationName: `${config.service}:query`, logger });
const readDb =
  config.database.readUrl === undefined
    ? db
    : createDatabase({
        ...config.database,
        url: config.database.readUrl,
        applicationName: `${config.service}:query-replica`,
      });

const handler = createQueryHandler({
  query: createQueryService({
    store: createRecordRepository({ db, readDb, idempotencyTtlHours: config.storage.idempotencyTtlHours }),
    cursors: createCursorCodec(config.cursorSecret),
  }),
  logger,
  openApi: buildOpenApiDocument(config.records),
});

await runFunction({
  handler,
  logger,
  functionName: 'query',
  ...config.http,
  readiness: () => pingDatabase(readDb).then(() => true),
  close: async () => {
    await Promise.all([db.destroy(), readDb === db ? undefined : readDb.destroy()]);
  },
});
