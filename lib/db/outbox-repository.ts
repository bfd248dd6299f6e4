import type { Knex } from 'knex';
import type { PoolClient, QueryResult } from 'pg';
import { type OutboxEntry, type OutboxStore, PartialRelayError, type RelayOutcome } from '#lib/events';
import { guardDatabase } from './errors.ts';

/**
 * Locks up to `rows` rows in outbox order (skipping rows other relays hold), then keeps the prefix whose event
 * text stays within the byte bound: a row is claimed while the bytes before it are below the bound, so a claim
 * always holds at least one event and exceeds the bound by at most one. The window runs over the locked ids and
 * sizes only (octet_length reads a TOASTed value's size without detoasting it); the event text is fetched for the
 * claimed rows alone. FOR UPDATE cannot share a query level with a window function, hence the CTE. The locked rows
 * past the bound stay locked until this transaction ends, which only makes other relays skip them for one round.
 * `createdAt` (the CloudEvent's time) is formatted here, in the claim, so the relay builds headers without a Date:
 * the row's commit time, equal to the record's received_at (both `now()` of the same transaction).
 */
const claimOf = (rows: number, bytes: number): string => `
  WITH locked AS (
    SELECT id, octet_length(event) AS bytes FROM outbox ORDER BY id LIMIT ${rows} FOR UPDATE SKIP LOCKED
  ), sized AS (
    SELECT id, bytes, sum(bytes) OVER (ORDER BY id) - bytes AS before, count(*) OVER () AS locked FROM locked
  )
  SELECT o.id::text AS id, o.record_id::text AS "recordId", o.event, o.trace, s.locked::int AS locked,
         to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "createdAt"
  FROM sized s JOIN outbox o ON o.id = s.id
  WHERE s.before < ${bytes}
  ORDER BY o.id`;

/**
 * PostgreSQL side of the outbox relay. Rows are claimed with FOR UPDATE SKIP LOCKED inside a transaction that
 * stays open while the batch is published, so concurrent relays never publish the same row twice in normal
 * operation, and a relay that dies mid-publish releases its rows by rolling back (they are published again:
 * at least once). Acknowledged rows are deleted and dead letters moved to `outbox_dead_letter` in that same
 * transaction.
 */
export function createOutboxRepository(db: Knex): OutboxStore {
  /**
   * A round is two round trips, not four: `BEGIN` travels with the claim and `COMMIT` with the delete, as one
   * simple-protocol message each (several statements, no parameters). The only values written into them are
   * integers checked here, and ids PostgreSQL itself rendered as digits. A relay round runs after every group-commit
   * batch under load, so its round trips were a third of the ingest's statements.
   */
  const claimSql = (rows: number, bytes: number): string => {
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(bytes) || rows < 1 || bytes < 1) {
      throw new RangeError(`relay claim limits must be positive integers (rows ${rows}, bytes ${bytes})`);
    }
    return `BEGIN; ${claimOf(rows, bytes)}`;
  };
  const idArray = (ids: readonly string[]): string => {
    for (const id of ids) if (!/^\d{1,19}$/.test(id)) throw new RangeError(`not an outbox id: ${JSON.stringify(id)}`);
    return `'{${ids.join(',')}}'::bigint[]`;
  };
  /** Moves the dead letters (copying their rows inside PostgreSQL), then deletes what is done and commits. */
  const settleAndCommit = async (connection: PoolClient, outcome: RelayOutcome): Promise<void> => {
    const { deadLetters } = outcome;
    if (deadLetters.length > 0) {
      await connection.query(
        `INSERT INTO outbox_dead_letter (outbox_id, created_at, record_id, event, trace, bytes, reason)
         SELECT o.id, o.created_at, o.record_id, o.event, o.trace, d.bytes, d.reason
         FROM unnest($1::bigint[], $2::int[], $3::text[]) AS d(id, bytes, reason) JOIN outbox o ON o.id = d.id
         ON CONFLICT (outbox_id) DO NOTHING`,
        [deadLetters.map((d) => d.entry.id), deadLetters.map((d) => d.bytes), deadLetters.map((d) => d.reason)],
      );
    }
    const done = [...outcome.acknowledged, ...deadLetters.map((d) => d.entry.id)];
    await connection.query(done.length > 0 ? `DELETE FROM outbox WHERE id = ANY(${idArray(done)}); COMMIT` : 'COMMIT');
  };

  return {
    relayBatch: async (limits, publish) => {
      let partial: PartialRelayError | undefined;
      const round = await guardDatabase(async () => {
        const connection = (await db.client.acquireConnection()) as PoolClient;
        // BEGIN goes with the claim: from then on until a COMMIT succeeds, a failure rolls back below.
        let open = true;
        try {
          const results = (await connection.query(claimSql(limits.rows, limits.bytes))) as unknown as QueryResult[];
          const rows = (results[1]?.rows ?? []) as Array<OutboxEntry & { locked: number }>;
          const locked = rows[0]?.locked ?? 0;
          const entries: OutboxEntry[] = rows.map(({ id, recordId, event, trace, createdAt }) => ({
            id,
            recordId,
            event,
            trace,
            createdAt,
          }));
          const full = locked === limits.rows || entries.length < locked;
          if (entries.length === 0) {
            await connection.query('COMMIT');
            open = false;
            return { claimed: 0, full: false, published: 0, deadLettered: 0 };
          }
          let outcome: RelayOutcome;
          try {
            outcome = await publish(entries);
          } catch (error) {
            if (!(error instanceof PartialRelayError)) throw error;
            // Commit what the broker took; the failure is rethrown once the transaction is through.
            await settleAndCommit(connection, error.outcome);
            open = false;
            partial = error;
            return { claimed: entries.length, full, published: 0, deadLettered: 0 };
          }
          await settleAndCommit(connection, outcome);
          open = false;
          return {
            claimed: entries.length,
            full,
            published: outcome.acknowledged.length,
            deadLettered: outcome.deadLetters.length,
          };
        } catch (error) {
          // Releases the claimed rows for the next round (or another relay). Also after a failed "DELETE; COMMIT":
          // PostgreSQL skips the rest of a message after an error, so the session is still in the aborted
          // transaction. A broken connection is dropped by knex's pool when it is next validated.
          if (open) {
            await connection.query('ROLLBACK').catch((rollbackError: unknown) => {
              // Not known to have rolled back (a query timeout leaves the claim running): never reused, or the
              // next user would run inside this transaction and its row locks. knex's pool drops it on release.
              (connection as PoolClient & { __knex__disposed?: unknown }).__knex__disposed = rollbackError;
            });
          }
          throw error;
        } finally {
          db.client.releaseConnection(connection);
        }
      }, 'relay outbox batch');
      if (partial !== undefined) throw partial;
      return round;
    },

    backlog: () =>
      guardDatabase(async () => {
        const result = await db.raw(
          `SELECT count(*)::int AS rows,
                  COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)) * 1000, 0)::float8 AS oldest_age_ms,
                  (SELECT count(dead_lettered_at)::int FROM outbox_dead_letter) AS dead_letters
           FROM outbox`,
        );
        const row = (result.rows as Array<{ rows: number; oldest_age_ms: number; dead_letters: number }>)[0];
        return { rows: row?.rows ?? 0, oldestAgeMs: row?.oldest_age_ms ?? 0, deadLetters: row?.dead_letters ?? 0 };
      }, 'outbox backlog'),
  };
}
