/**
 * The migration job (`npm run db:migrate`, a Kubernetes Job in production): applies pending migrations, then creates the partitions the write window needs
 * (`--maintain-only` skips the migrations: the periodic job of a deployment without an ingest pod running it).
 */
import { createDatabase, maintainPartitions, migrateToLatest, partitionPlanFrom } from '#lib/db';
import { bootstrap } from '#lib/runtime';

const { config, logger, logging } = bootstrap(process.env, { servesApi: false });
const db = createDatabase({ ...config.database, poolMax: 2, applicationName: `${config.service}:migrate` });
try {
  if (!process.argv.includes('--maintain-only')) {
    const applied = await migrateToLatest(db);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema up to date');
  }
  const report = await maintainPartitions(db, partitionPlanFrom(config));
  logger.info({ ...report, created: report.created.length }, 'partitions maintained');
} catch (error) {
  logger.fatal({ err: error }, 'migration failed');
  process.exitCode = 1;
} finally {
  await db.destroy();
  logging.sink?.flushSync();
}
