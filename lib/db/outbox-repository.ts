import type { Knex } from 'knex';
import type { OutboxEntry, OutboxStore } from '#lib/events';
import { guardDatabase } from './errors.ts';

/**
 * PostgreSQL side of the outbox relay. Rows are claimed with FOR UPDATE SKIP LOCKED inside a transaction that
 * stays open while the batch is published, so concurrent relays never publish the same row twice in normal
 * operation, and a relay that dies mid-publish releases its rows by rolling back (they are published again:
 * at least once).
 */
export function createOutboxRepository(db: Knex): OutboxStore {
  return {
    relayBatch: (limit, publish) =>
      guardDatabase(
        () =>
          db.transaction(async (trx) => {
            const claimed = await trx.raw(
              `SELECT id::text AS id, record_id::text AS "recordId", event, trace
               FROM outbox ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`,
              [limit],
            );
            const entries = claimed.rows as OutboxEntry[];
            if (entries.length === 0) return 0;
            await publish(entries);
            await trx.raw('DELETE FROM outbox WHERE id = ANY(?::bigint[])', [entries.map((e) => e.id)]);
            return entries.length;
          }),
        'relay outbox batch',
      ),

    backlog: () =>
      guardDatabase(async () => {
        const result = await db.raw(
          `SELECT count(*)::int AS rows,
                  COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)) * 1000, 0)::float8 AS oldest_age_ms
           FROM outbox`,
        );
        const row = (result.rows as Array<{ rows: number; oldest_age_ms: number }>)[0];
        return { rows: row?.rows ?? 0, oldestAgeMs: row?.oldest_age_ms ?? 0 };
      }, 'outbox backlog'),
  };
}
