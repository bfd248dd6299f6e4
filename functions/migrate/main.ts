/**
 * The migration job (`npm run db:migrate`, a Kubernetes Job in production): applies pending migrations, then creates the partitions the write window needs
 * (`--maintain-only` skips the migrations: the periodic job of a deployment without an ingest pod running it;
 * with S3_BUCKET set it then archives the due days). Partitions come first: archiving a large day can outlast the
 * job's deadline, and the days ahead must be created whatever happens to it. Retention drops only verified days,
 * so a day archived in this run is dropped by the next one.
 */
import { archiveDueDays, createObjectStore } from '#lib/archive';
import { createDatabase, describeRetention, maintainPartitions, migrateToLatest, partitionPlanFrom } from '#lib/db';
import { bootstrap, exitOnHelp } from '#lib/runtime';

exitOnHelp(`usage: npm run db:migrate          (node dist/migrate.mjs)
       npm run db:maintain         (node dist/migrate.mjs --maintain-only)
Applies pending migrations (as ds_migrate, DATABASE_URL), then creates the partitions of the write window and
applies retention. --maintain-only skips the migrations: the hourly maintenance job, which also archives the due
days to S3 when S3_BUCKET is set (docs/storage.md). Settings: the environment, as in the README's table.`);

const { config, logger, logging } = bootstrap(process.env, { servesApi: false });
const maintainOnly = process.argv.includes('--maintain-only');
const db = createDatabase({
  ...config.database,
  // Archiving scans whole partitions; the functions' statement timeout is for requests.
  ...(maintainOnly && config.archive && { statementTimeoutMs: Math.max(config.database.statementTimeoutMs, 600_000) }),
  poolMax: 3,
  applicationName: `${config.service}:migrate`,
});
try {
  if (!maintainOnly) {
    const applied = await migrateToLatest(db);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema up to date');
  }
  const plan = partitionPlanFrom(config);
  logger.info({ retention_days: plan.retentionDays }, describeRetention(plan));
  const report = await maintainPartitions(db, plan);
  logger.info({ ...report, created: report.created.length }, 'partitions maintained');
  if (maintainOnly && config.archive) {
    // A failed archive never stops partition creation; retention simply keeps the days it could not verify.
    const store = createObjectStore(config.archive);
    try {
      const outcomes = await archiveDueDays({ db, store, config: config.archive, logger });
      const failed = outcomes.filter((o) => o.status === 'failed');
      logger.info({ days: outcomes.length, failed: failed.length }, 'archive run');
      if (failed.length > 0) process.exitCode = 1;
    } catch (error) {
      logger.error({ err: error }, 'archive run failed; retention keeps the unarchived days');
      process.exitCode = 1;
    } finally {
      store.close();
    }
  }
} catch (error) {
  logger.fatal({ err: error }, 'migration failed');
  process.exitCode = 1;
} finally {
  await db.destroy();
  logging.sink?.flushSync();
}
