/**
 * The archive job: `npm run archive [-- --day YYYY-MM-DD]` writes every due day (or the one given) to S3 as
 * Parquet and verifies it; `npm run restore -- --day YYYY-MM-DD [--hold-days N]` re-attaches a day from its
 * archive. Both are idempotent and resumable; `npm run db:maintain` also archives before it applies retention.
 * Exit status: 0 when every day it touched ended verified (or restored), 1 otherwise, 78 for bad configuration.
 */
import { parseArgs } from 'node:util';
import { archiveDay, archiveDueDays, createObjectStore, type DayOutcome, parseDay, restoreDay } from '#lib/archive';
import { createDatabase } from '#lib/db';
import { bootstrap, exitOnHelp } from '#lib/runtime';

exitOnHelp(`usage: npm run archive [-- --day YYYY-MM-DD]
       npm run restore -- --day YYYY-MM-DD [--hold-days N]
archive: writes every due day (older than ARCHIVE_AFTER_DAYS), or the one given, to S3 as Parquet and verifies it.
restore: re-attaches an archived day from S3 and holds it against retention for N days (default 7).
Both are idempotent and resumable. Needs S3_BUCKET (and the S3_* settings) and DATABASE_URL; docs/storage.md.
Exit status: 0 when every day touched ended verified or restored, 1 otherwise, 78 for bad configuration.`);

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { day: { type: 'string' }, 'hold-days': { type: 'string', default: '7' } },
  allowPositionals: true,
});
const command = positionals[0] ?? 'archive';
const { config, logger, logging } = bootstrap(process.env, { servesApi: false });

const fail = (message: string): never => {
  logger.fatal(message);
  logging.sink?.flushSync();
  process.exit(78);
};
if (command !== 'archive' && command !== 'restore') fail(`unknown command ${command}; use archive or restore`);
if (config.archive === undefined) fail('S3_BUCKET is not set: there is no archive to write to or restore from');
const archive = config.archive ?? fail('unreachable');
const holdDays = Number(values['hold-days']);
if (!Number.isInteger(holdDays) || holdDays < 0 || holdDays > 3650) fail('--hold-days must be a whole number of days');
let day: string | undefined;
try {
  day = values.day === undefined ? undefined : parseDay(values.day);
} catch (error) {
  fail((error as Error).message);
}
if (command === 'restore' && day === undefined) fail('restore needs --day YYYY-MM-DD');

// Statements here scan whole partitions (figures, registry refill): a longer timeout than the functions'.
const db = createDatabase({
  ...config.database,
  statementTimeoutMs: Math.max(config.database.statementTimeoutMs, 600_000),
  poolMax: 3,
  applicationName: `${config.service}:archive`,
});
const store = createObjectStore(archive);
try {
  if (command === 'restore' && day !== undefined) {
    const outcome = await restoreDay({ db, store, logger, holdDays }, day);
    logger.info({ ...outcome }, outcome.status === 'restored' ? 'restored' : 'already present');
  } else {
    const options = { db, store, config: archive, logger };
    const outcomes: DayOutcome[] = day === undefined ? await archiveDueDays(options) : [await archiveDay(options, day)];
    const failed = outcomes.filter((o) => o.status === 'failed' || o.status === 'locked');
    logger.info(
      { days: outcomes.length, failed: failed.length, outcomes },
      failed.length === 0 ? 'archive up to date' : 'archive incomplete; rerun to resume',
    );
    if (failed.length > 0) process.exitCode = 1;
  }
} catch (error) {
  logger.error({ err: error }, `${command} failed`);
  process.exitCode = 1;
} finally {
  store.close();
  await db.destroy();
  logging.sink?.flushSync();
}
