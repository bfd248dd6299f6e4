import type { Knex } from 'knex';

/**
 * Two indexes the measured plans asked for (docs/storage.md):
 * - `(source, type, "timestamp" DESC, id DESC)`: a list filtered by both would otherwise read every row of one
 *   of them across all partitions when the pair is rare.
 * - BRIN on `record_ids("timestamp")`: retention deletes registry rows by time; ids arrive in roughly timestamp
 *   order, so a BRIN index costs almost nothing on insert yet spares a sequential scan of the whole registry.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(
    `CREATE INDEX IF NOT EXISTS records_source_type_timestamp_id ON records (source, type, "timestamp" DESC, id DESC)`,
  );
  await db.raw(`CREATE INDEX IF NOT EXISTS record_ids_timestamp_brin ON record_ids USING brin ("timestamp")`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX IF EXISTS records_source_type_timestamp_id, record_ids_timestamp_brin');
}
