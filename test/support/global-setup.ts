import { maintainPartitions, migrateToLatest } from '#lib/db';
import { createTestDatabase } from './database.ts';

/** Once per run: migrate the test database and create the partitions the tests write into. */
export default async function globalSetup(): Promise<void> {
  const db = createTestDatabase(1);
  try {
    await migrateToLatest(db);
    await maintainPartitions(db, { pastDays: 30, aheadDays: 7, retentionDays: 0, idempotencyTtlHours: 24 });
    // Tests without a relay leave their events in the outbox; a relay started by a later test would otherwise
    // first publish every event of every earlier run.
    await db.raw('TRUNCATE outbox');
  } finally {
    await db.destroy();
  }
}
