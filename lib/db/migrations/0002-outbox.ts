import type { Knex } from 'knex';

/**
 * The transactional outbox: every write that creates records also inserts one row here in the same statement,
 * so a committed record's event can never be lost, whatever happens to the process or the broker afterwards.
 * Rows live only until a relay has published them.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    CREATE TABLE outbox (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      created_at timestamptz NOT NULL DEFAULT now(),
      records jsonb NOT NULL CHECK (jsonb_typeof(records) = 'array')
    )`);
  // A queue table: rows are deleted soon after insert, so let autovacuum visit it often.
  await db.raw(`ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000)`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP TABLE IF EXISTS outbox');
}
