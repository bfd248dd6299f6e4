import type { Knex } from 'knex';

/**
 * Events the broker can never take: one that alone, as a record batch, exceeds the topic's `max.message.bytes`.
 * Left in the outbox it would be retried forever and hold back every event after it (invariant 6), so the relay
 * moves it here in the transaction that deletes it from the outbox, with its size and the reason. Rows stay until
 * an operator acts (raise the topic's limit and re-insert the event into the outbox, or drop it); the
 * `data_service_outbox_dead_letter_rows` gauge and the DataServiceEventsDeadLettered alert say they exist.
 *
 * The relay (`ds_relay`, which the ingest user is a member of while it relays) needs INSERT and SELECT; ingest's
 * backlog gauge counts the rows, for which one column is enough (it never reads an event). The table is
 * `ds_migrate`'s, as everything migration 0007 handed over.
 */
export const DEAD_LETTER_GRANTS = [
  'GRANT SELECT, INSERT ON outbox_dead_letter TO ds_relay',
  'GRANT SELECT (dead_lettered_at) ON outbox_dead_letter TO ds_ingest',
] as const;

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
  await db.raw('ALTER TABLE outbox_dead_letter OWNER TO ds_migrate');
  for (const grant of DEAD_LETTER_GRANTS) await db.raw(grant);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP TABLE IF EXISTS outbox_dead_letter');
}
