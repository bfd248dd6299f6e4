/** Process entry of the ingest function: config, clients, the app, served on $PORT until SIGTERM. */
import { createRedisClient } from '#lib/cache';
import { createDatabase } from '#lib/db';
import { createKafkaPublisher } from '#lib/events';
import { bootstrap, createAccessLog, runFunction } from '#lib/runtime';
import { createIngestApp } from './app.ts';

const { config, logger, logging, tracing } = bootstrap(process.env);
const db = createDatabase({ ...config.database, applicationName: `${config.service}:ingest`, logger });
const redis = config.redis && createRedisClient(config.redis, logger);
const publisher = config.kafka && createKafkaPublisher({ config: config.kafka, logger });
const app = createIngestApp(config, { db, redis, publisher }, logger);
await app.start();

await runFunction({
  ...config.http,
  handler: app.handler,
  logger,
  logSink: logging.sink,
  functionName: 'ingest',
  readiness: app.readiness,
  metrics: { contentType: app.metrics.registry.contentType, render: () => app.metrics.registry.metrics() },
  observe: app.metrics.observeRequest,
  accessLog: createAccessLog(logging),
  close: async () => {
    await app.close();
    await publisher?.close();
    redis?.disconnect();
    await db.destroy();
    await tracing.shutdown();
  },
});
