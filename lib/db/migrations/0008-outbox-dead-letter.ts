import type { Knex } from 'knex';

/**
 * Events the broker can never take: one that alone, as a record batch, exceeds the topic's `max.message.bytes`.
 * Left in the outbox it would be retried forever and hold back every event after it (invariant 6), so the relay
 * moves it here in the transaction that deletes it from the outbox, with its size and the reason. Rows stay until
 * an operator acts (raise the topic's limit and re-insert the event into the outbox, or drop it); the
 * `data_service_outbox_dead_letter_rows` gauge and the DataServiceEventsDeadLettered alert say they exist.
 *
 * The relay needs INSERT (and SELECT, for the gauge); it runs as `ds_relay`, and inside ingest as `ds_ingest`,
 * where those roles exist (migration 0007 creates them in deployments that use per-process roles).
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    CREATE TABLE outbox_dead_letter (
      outbox_id bigint PRIMARY KEY,
      created_at timestamptz NOT NULL,
      record_id uuid NOT NULL,
      event text NOT NULL,
      trace text,
      bytes integer NOT NULL,
      reason text NOT NULL,
      dead_lettered_at timestamptz NOT NULL DEFAULT now()
    )`);
  await db.raw('CREATE INDEX outbox_dead_letter_record_id ON outbox_dead_letter (record_id)');
  await db.raw(`
    DO $$
    BEGIN
      IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ds_relay') THEN
        GRANT SELECT, INSERT ON outbox_dead_letter TO ds_relay;
      END IF;
      IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ds_ingest') THEN
        GRANT SELECT, INSERT ON outbox_dead_letter TO ds_ingest;
      END IF;
    END
    $$`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP TABLE IF EXISTS outbox_dead_letter');
}
