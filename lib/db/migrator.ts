import type { Knex } from 'knex';
import * as records0001 from './migrations/0001-records.ts';
import * as outbox0002 from './migrations/0002-outbox.ts';
import * as queryIndexes0003 from './migrations/0003-query-indexes.ts';
import * as readyJson0004 from './migrations/0004-ready-json.ts';
import * as findRecord0005 from './migrations/0005-find-record.ts';
import * as contentDigest0006 from './migrations/0006-content-digest.ts';
import * as roles0007 from './migrations/0007-roles.ts';
import * as outboxDeadLetter0008 from './migrations/0008-outbox-dead-letter.ts';
import * as archive0009 from './migrations/0009-archive.ts';
import * as partitionOnDemand0010 from './migrations/0010-partition-on-demand.ts';

interface Migration {
  up(db: Knex): Promise<void>;
  down(db: Knex): Promise<void>;
}

/** Migrations are imported, not read from disk, so the esbuild bundles carry them. Append only. */
const MIGRATIONS: ReadonlyArray<readonly [string, Migration]> = [
  ['0001-records', records0001],
  ['0002-outbox', outbox0002],
  ['0003-query-indexes', queryIndexes0003],
  ['0004-ready-json', readyJson0004],
  ['0005-find-record', findRecord0005],
  ['0006-content-digest', contentDigest0006],
  // 0007 hands what exists when it runs to ds_migrate; later migrations hand over what they create.
  ['0007-roles', roles0007],
  ['0008-outbox-dead-letter', outboxDeadLetter0008],
  ['0009-archive', archive0009],
  ['0010-partition-on-demand', partitionOnDemand0010],
];

const source: Knex.MigrationSource<readonly [string, Migration]> = {
  getMigrations: async () => [...MIGRATIONS],
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};

/** Applies every pending migration (knex holds a lock table, so concurrent starts are safe); returns their names. */
export async function migrateToLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource: source })) as [number, string[]];
  return applied;
}

/** Rolls every migration back (used by tests that need an empty schema). */
export async function rollbackAll(db: Knex): Promise<void> {
  await db.migrate.rollback({ migrationSource: source }, true);
}
