import type { Knex } from 'knex';
import {
  formatUtcTimestamp,
  type IdempotentWriteOutcome,
  type IngestResult,
  type JsonObject,
  type NewRecord,
  type RecordStore,
  type StoredRecord,
  type WriteResult,
} from '#lib/records';
import { guardDatabase } from './errors.ts';

export interface RecordRepositoryOptions {
  /** Primary: every write, and reads unless a replica is given. */
  readonly db: Knex;
  /** Optional read replica for `findById` and `list`. */
  readonly readDb?: Knex;
  /** Called after a write that created records has committed (wakes the outbox relay). */
  readonly onCommitted?: (createdIds: readonly string[]) => void;
  readonly idempotencyTtlHours: number;
}

interface RecordRow {
  id: string;
  source: string;
  type: string;
  ts: string;
  payload: JsonObject;
  received: string;
}

// Timestamps leave PostgreSQL as UTC text with all six fractional digits: a JS Date would drop microseconds and
// so break keyset positions of rows written within the same millisecond.
const UTC_TEXT = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
const RECORD_COLUMNS = `r.id, r.source, r.type, ${UTC_TEXT('r."timestamp"')} AS ts, r.payload, ${UTC_TEXT('r.received_at')} AS received`;

// One statement claims the ids in the registry, inserts only the rows whose claim succeeded, and writes one outbox
// row listing them: two writers of the same id serialise on the registry's unique index (the loser sees
// `duplicate`, never an error), and no record commits without its event. Claims are taken in id order so that
// overlapping batches cannot deadlock.
const INSERT_SQL = `
  WITH input AS (
    SELECT * FROM unnest(?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::text[])
      AS t(id, source, type, "timestamp", payload, trace)
  ), claimed AS (
    INSERT INTO record_ids (id, "timestamp")
    SELECT id, "timestamp" FROM input ORDER BY id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
  ), inserted AS (
    INSERT INTO records (id, source, type, "timestamp", payload)
    SELECT i.id, i.source, i.type, i."timestamp", i.payload FROM input i JOIN claimed c USING (id)
    RETURNING id, source, type, "timestamp", payload, received_at
  ), announced AS (
    INSERT INTO outbox (records)
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
      'id', n.id, 'source', n.source, 'type', n.type, 'payload', n.payload, 'trace', NULLIF(i.trace, ''),
      'timestamp', ${UTC_TEXT('n."timestamp"')}, 'received_at', ${UTC_TEXT('n.received_at')})))
    FROM inserted n JOIN input i USING (id)
    HAVING count(*) > 0
  )
  SELECT id FROM inserted`;

// By id in two steps: the registry gives the row's timestamp, then the record is read from exactly one partition.
// A single statement would be planned (and lock) against every partition, which grows with retention.
// The timestamp travels as text: a JS Date would drop its microseconds and miss the row.
const TIMESTAMP_OF_ID_SQL = 'SELECT "timestamp"::text AS at FROM record_ids WHERE id = ?';
const FIND_BY_ID_SQL = `SELECT ${RECORD_COLUMNS} FROM records r WHERE r."timestamp" = ?::timestamptz AND r.id = ?`;

/** PostgreSQL implementation of the domain's `RecordStore`. */
export function createRecordRepository({
  db,
  readDb = db,
  idempotencyTtlHours,
  onCommitted,
}: RecordRepositoryOptions): RecordStore {
  const committed = (written: readonly WriteResult[]) => {
    const created = written.filter((w) => w.status === 'created').map((w) => w.id);
    if (created.length > 0) onCommitted?.(created);
  };

  async function insertWith(runner: Knex | Knex.Transaction, records: readonly NewRecord[]): Promise<WriteResult[]> {
    const result = await runner.raw(INSERT_SQL, [
      records.map((r) => r.id),
      records.map((r) => r.source),
      records.map((r) => r.type),
      records.map((r) => r.timestamp),
      records.map((r) => JSON.stringify(r.payload)),
      records.map((r) => r.traceContext ?? ''),
    ]);
    const created = new Set((result.rows as Array<{ id: string }>).map((row) => row.id));
    return records.map((r) => ({ id: r.id, status: created.has(r.id) ? 'created' : 'duplicate' }));
  }

  return {
    insert: (records) =>
      guardDatabase(async () => {
        const written = await insertWith(db, records);
        committed(written);
        return written;
      }, 'insert records'),

    insertIdempotent: (records, claim) =>
      guardDatabase(async () => {
        const outcome = await db.transaction(async (trx): Promise<IdempotentWriteOutcome> => {
          // A transaction-scoped try-lock tells "another request with this key is running" (409) apart from
          // "it already finished" (replay) without blocking either.
          const lock = await trx.raw('SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0)) AS locked', [
            `idempotency:${claim.key}`,
          ]);
          if (!(lock.rows as Array<{ locked: boolean }>)[0]?.locked) return { kind: 'in-flight' };
          const previous = await trx.raw(
            `SELECT fingerprint, response FROM idempotency_keys
             WHERE key = ? AND created_at > now() - make_interval(hours => ?)`,
            [claim.key, idempotencyTtlHours],
          );
          const row = (previous.rows as Array<{ fingerprint: string; response: IngestResult }>)[0];
          if (row !== undefined) {
            return row.fingerprint === claim.fingerprint
              ? { kind: 'replayed', result: row.response }
              : { kind: 'fingerprint-mismatch' };
          }
          const result = claim.result(await insertWith(trx, records));
          await trx.raw(
            `INSERT INTO idempotency_keys (key, fingerprint, response) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE
               SET fingerprint = excluded.fingerprint, response = excluded.response, created_at = now()`,
            [claim.key, claim.fingerprint, JSON.stringify(result)],
          );
          return { kind: 'committed', result };
        });
        if (outcome.kind === 'committed') committed(outcome.result.records);
        return outcome;
      }, 'insert records idempotent'),

    findById: (id) =>
      guardDatabase(async () => {
        const registered = await readDb.raw(TIMESTAMP_OF_ID_SQL, [id]);
        const at = (registered.rows as Array<{ at: string }>)[0]?.at;
        if (at === undefined) return undefined;
        const result = await readDb.raw(FIND_BY_ID_SQL, [at, id]);
        const row = (result.rows as RecordRow[])[0];
        return row === undefined ? undefined : toStoredRecord(row);
      }, 'select record'),

    list: (query) =>
      guardDatabase(async () => {
        const builder = readDb('records as r').select(readDb.raw(RECORD_COLUMNS));
        if (query.source !== undefined) builder.where('r.source', query.source);
        if (query.type !== undefined) builder.where('r.type', query.type);
        if (query.from !== undefined) builder.where('r.timestamp', '>=', query.from);
        if (query.to !== undefined) builder.where('r.timestamp', '<', query.to);
        if (query.after !== undefined) {
          builder.whereRaw('(r."timestamp", r.id) < (?::timestamptz, ?::uuid)', [
            `${query.after.timestamp}`,
            query.after.id,
          ]);
        }
        builder.orderBy([
          { column: 'r.timestamp', order: 'desc' },
          { column: 'r.id', order: 'desc' },
        ]);
        const rows = (await builder.limit(query.limit)) as RecordRow[];
        return rows.map(toStoredRecord);
      }, 'select records page'),
  };
}

function toStoredRecord(row: RecordRow): StoredRecord {
  return {
    id: row.id,
    source: row.source,
    type: row.type,
    timestamp: formatUtcTimestamp(row.ts),
    payload: row.payload,
    received_at: formatUtcTimestamp(row.received),
  };
}
