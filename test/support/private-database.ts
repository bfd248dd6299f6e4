import { randomBytes } from 'node:crypto';
import { createDatabase, databaseNameOf, maintainPartitions, migrateToLatest } from '#lib/db';
import { testDatabaseUrl } from './database.ts';

export interface PrivateDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

const admin = () =>
  createDatabase({
    url: testDatabaseUrl(),
    poolMax: 1,
    connectTimeoutMs: 2_000,
    statementTimeoutMs: 30_000,
    applicationName: 'tests',
  });

/**
 * A fresh database beside the shared test database, migrated the same way. For tests that run an outbox relay:
 * on the shared database every relay of every concurrent test would publish (and delete) every other test's
 * events.
 */
export async function createPrivateDatabase(label: string): Promise<PrivateDatabase> {
  const base = new URL(testDatabaseUrl());
  const name = `${databaseNameOf(base.href)}_${label}_${randomBytes(4).toString('hex')}`;
  const creator = admin();
  try {
    await creator.raw(`CREATE DATABASE "${name}"`);
  } finally {
    await creator.destroy();
  }
  base.pathname = `/${name}`;
  const db = createDatabase({
    url: base.href,
    poolMax: 1,
    connectTimeoutMs: 2_000,
    statementTimeoutMs: 30_000,
    applicationName: 'tests',
  });
  try {
    await migrateToLatest(db);
    await maintainPartitions(db, { pastDays: 30, aheadDays: 7, retentionDays: 0, idempotencyTtlHours: 24 });
  } finally {
    await db.destroy();
  }
  return {
    url: base.href,
    async drop() {
      const dropper = admin();
      try {
        await dropper.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await dropper.destroy();
      }
    },
  };
}
