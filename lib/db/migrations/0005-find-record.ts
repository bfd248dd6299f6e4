import type { Knex } from 'knex';

/**
 * A record by id in one round trip: the registry gives the partition's timestamp, then exactly one partition is
 * read, inside PostgreSQL. A single joined statement would be planned against every partition; two statements
 * from the client cost two network round trips, which were most of a cold read's CPU on both sides. PL/pgSQL
 * plans the inner SELECT with the timestamp known (a custom plan prunes to one partition).
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    CREATE FUNCTION ds_find_record(record_id uuid) RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
    DECLARE
      at timestamptz;
      found_json text;
    BEGIN
      SELECT i."timestamp" INTO at FROM record_ids i WHERE i.id = record_id;
      IF NOT FOUND THEN
        RETURN NULL;
      END IF;
      SELECT ds_record_json(r.id, r.source, r.type, r."timestamp", r.payload, r.received_at) INTO found_json
      FROM records r WHERE r."timestamp" = at AND r.id = record_id;
      RETURN found_json;
    END
    $$`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP FUNCTION IF EXISTS ds_find_record(uuid)');
}
