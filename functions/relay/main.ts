/**
 * `npm run relay`: the outbox relay as its own deployment (RELAY_ENABLED=false on ingest pods then). Serves only
 * /healthz, /readyz and /metrics on $PORT; every other path is a 404 problem.
 */
import { createDatabase, createDatabaseProbe, createOutboxRepository, poolStats } from '#lib/db';
import { AppError } from '#lib/errors';
import { createKafkaPublisher, createOutboxRelay } from '#lib/events';
import { problemResponse } from '#lib/http';
import { createMetrics } from '#lib/observability';
import { bootstrap, createAccessLog, exitOnHelp, runFunction } from '#lib/runtime';

exitOnHelp(`usage: npm run relay          (node dist/relay.mjs)
The outbox relay as its own process, for deployments that run it apart from ingest (RELAY_ENABLED=false there):
publishes committed outbox rows to Kafka, serving only /healthz, /readyz and /metrics on $PORT. Settings: the
environment (DATABASE_URL, KAFKA_*, RELAY_*), as in the README's table.`);

const { config, logger, logging, tracing } = bootstrap(process.env, { servesApi: false });
if (config.kafka === undefined) {
  logger.fatal('KAFKA_BROKERS must be set for the relay');
  process.exit(78);
}
const metrics = createMetrics({ service: config.service, revision: config.revision });
const db = createDatabase({ ...config.database, poolMax: 2, applicationName: `${config.service}:relay`, logger });
const outbox = createOutboxRepository(db);
const publisher = createKafkaPublisher({ config: config.kafka, logger });
const relay = createOutboxRelay({ store: outbox, publisher, logger, ...config.relay });
relay.start();
metrics.dependency('kafka', () => relay.status().brokerReachable);
metrics.relay(() => {
  const { eventsPublished, publishErrors, eventsDeadLettered } = relay.status();
  return { published: eventsPublished, errors: publishErrors, deadLettered: eventsDeadLettered };
});
metrics.outbox(() => outbox.backlog());
metrics.pool('primary', () => poolStats(db));
const postgres = createDatabaseProbe(db);
metrics.dependency('postgres', postgres.up);

await runFunction({
  handler: async (request) =>
    problemResponse(new AppError('route-not-found', `The relay serves no ${request.path}.`), {
      requestId: request.requestId,
      instance: request.path,
    }),
  logger,
  logSink: logging.sink,
  accessLog: createAccessLog(logging),
  functionName: 'relay',
  ...config.http,
  metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
  readiness: postgres.ready,
  close: async () => {
    await relay.stop(5_000);
    await publisher.close();
    await db.destroy();
    await tracing.shutdown();
  },
});
