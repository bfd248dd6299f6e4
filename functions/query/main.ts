/** Process entry of the query function: config, clients (an optional read replica), the app, served on $PORT. */
import { createRedisClient } from '#lib/cache';
import { createDatabase } from '#lib/db';
import { bootstrap, createAccessLog, runFunction } from '#lib/runtime';
import { createQueryApp } from './app.ts';

const { config, logger, logging, tracing } = bootstrap(process.env, { issuesCursors: true });
const db = createDatabase({ ...config.database, applicationName: `${config.service}:query`, logger });
const readDb =
  config.database.readUrl === undefined
    ? undefined
    : createDatabase({
        ...config.database,
        url: config.database.readUrl,
        applicationName: `${config.service}:query-replica`,
        logger,
      });
const redis = config.redis && createRedisClient(config.redis, logger);
const app = createQueryApp(config, { db, readDb, redis }, logger);

await runFunction({
  ...config.http,
  handler: app.handler,
  logger,
  logSink: logging.sink,
  functionName: 'query',
  readiness: app.readiness,
  metrics: { contentType: app.metrics.registry.contentType, render: () => app.metrics.registry.metrics() },
  observe: app.metrics.observeRequest,
  accessLog: createAccessLog(logging),
  close: async () => {
    await app.close();
    redis?.disconnect();
    await Promise.all([db.destroy(), readDb?.destroy()]);
    await tracing.shutdown();
  },
});
