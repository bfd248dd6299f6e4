import type { Knex } from 'knex';
import { TimestampNotStoredError, WriteAbandonedError } from '#lib/errors';
import {
  type IdempotentWriteOutcome,
  type IngestResult,
  type ListedRecord,
  type ListQuery,
  type NewRecord,
  type RecordReader,
  type RecordWriter,
  utcDayOf,
  type WriteGuard,
  type WriteResult,
} from '#lib/records';
import { guardDatabase } from './errors.ts';
import { createPreparedStatements, numbered } from './prepared.ts';

export interface RecordRepositoryOptions {
  /** Primary: every write, and reads unless a replica is given. */
  readonly db: Knex;
  /** Called after a write that created records has committed (wakes the outbox relay). */
  readonly onCommitted?: (createdIds: readonly string[]) => void;
  /** Called when a write found no partition for a day and created it: maintenance is behind (worth a log). */
  readonly onPartitionCreated?: (names: readonly string[]) => void;
  readonly idempotencyTtlHours: number;
}

// The JSON text of a record, built by PostgreSQL (migration 0004): reads and events send it as it is.
const RECORD_JSON = 'ds_record_json(r.id, r.source, r.type, r."timestamp", r.payload, r.received_at)';

// The batch travels as one JSON text parameter, assembled below without escaping anything: each payload is the
// text the validator produced, and every other field is a UUID, a validated name, an RFC 3339 instant or a
// traceparent. (Six text arrays cost node-pg a character-by-character escape of every payload.)
// ds_insert_records (migrations 0004–0006) claims the ids in the registry, inserts only the rows whose claim
// succeeded, and writes one outbox event per inserted record, in one statement: two writers of the same id
// serialise on the registry's unique index (the loser sees `duplicate`, or `id-conflict` for other content), and
// no record commits without its event. Claims are taken in id order so that overlapping batches cannot deadlock.
const INSERT_SQL = 'SELECT ds_insert_records(?::json) AS id';

// By id in one round trip: the registry, then exactly one partition, inside PostgreSQL (migrations 0005, 0006).
const FIND_BY_ID_SQL = 'SELECT record_source AS source, record_json AS json FROM ds_find_record_source($1)';

/** PostgreSQL implementation of the domain's `RecordWriter`. */
export function createRecordWriter({
  db,
  idempotencyTtlHours,
  onCommitted,
  onPartitionCreated,
}: RecordRepositoryOptions): RecordWriter {
  const statements = createPreparedStatements(db);
  /**
   * `write`, and when it finds no partition for a day of `records`: that day created (`ds_ensure_record_partition`,
   * migration 0010) and `write` once more. Before, it was a 503 on every retry until maintenance ran. A day
   * PostgreSQL refuses (outside its write window) is a `TimestampNotStoredError` (422); a second miss is a plain
   * database failure (500): retrying would not help, and it means something is wrong with the schema.
   * The first attempt failed before its COMMIT, so `guard` was not asked yet and is asked once, by the second.
   */
  const withPartitions = async <T>(
    records: readonly NewRecord[],
    guard: WriteGuard | undefined,
    write: () => Promise<T>,
  ): Promise<T> => {
    try {
      return await write();
    } catch (error) {
      if (!isMissingPartition(error)) throw error;
    }
    const refused: string[] = [];
    const created: string[] = [];
    for (const day of [...new Set(records.map((r) => utcDayOf(r.timestamp)))].sort()) {
      try {
        const result = await db.raw('SELECT ds_ensure_record_partition(?::date) AS name', [day]);
        const name = (result.rows as Array<{ name: string | null }>)[0]?.name;
        if (typeof name === 'string') created.push(name);
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'DS422') throw error;
        refused.push(day);
      }
    }
    if (created.length > 0) onPartitionCreated?.(created);
    if (refused.length > 0) throw new TimestampNotStoredError(refused);
    if (guard?.signal?.aborted) throw guard.signal.reason;
    return write();
  };
  const committed = (written: readonly WriteResult[]) => {
    const created = written.filter((w) => w.status === 'created').map((w) => w.id);
    if (created.length > 0) onCommitted?.(created);
  };
  const bindings = (records: readonly NewRecord[]) => [
    `[${records
      .map(
        (r) =>
          `{"id":"${r.id}","source":${JSON.stringify(r.source)},"type":${JSON.stringify(r.type)},"timestamp":"${r.timestamp}","payload":${r.payloadJson},"trace":${r.traceContext === undefined ? 'null' : JSON.stringify(r.traceContext)},"keyed":${r.idGiven !== false},"stamped":${r.timestampGiven !== false}}`,
      )
      .join(',')}]`,
  ];
  const resultOf = (records: readonly NewRecord[], rows: ReadonlyArray<{ id: string }>): WriteResult[] => {
    const created = new Set(rows.map((row) => row.id));
    return records.map((r) => ({ id: r.id, status: created.has(r.id) ? 'created' : 'duplicate' }));
  };

  return {
    insert: (records, guard) =>
      guardDatabase(async () => {
        const text = numbered(INSERT_SQL);
        const result = await withPartitions(records, guard, () =>
          guard === undefined
            ? statements.run<{ id: string }>('insert-records', text, bindings(records))
            : statements.guarded<{ id: string }>('insert-records', text, bindings(records), guard),
        );
        const written = resultOf(records, result.rows);
        committed(written);
        return written;
      }, 'insert records'),

    insertIdempotent: (records, claim, guard) =>
      guardDatabase(async () => {
        const outcome = await withPartitions(records, guard, () =>
          db.transaction(async (trx): Promise<IdempotentWriteOutcome> => {
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
            const inserted = await trx.raw(INSERT_SQL, bindings(records));
            const result = claim.result(resultOf(records, inserted.rows as Array<{ id: string }>));
            await trx.raw(
              `INSERT INTO idempotency_keys (key, fingerprint, response) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE
               SET fingerprint = excluded.fingerprint, response = excluded.response, created_at = now()`,
              [claim.key, claim.fingerprint, JSON.stringify(result)],
            );
            // The last moment the write may still be given up: knex commits as soon as this returns.
            if (guard !== undefined && !guard.claimCommit()) throw new WriteAbandonedError('The write was given up');
            return { kind: 'committed', result };
          }),
        );
        if (outcome.kind === 'committed') committed(outcome.result.records);
        return outcome;
      }, 'insert records idempotent'),
  };
}

/**
 * PostgreSQL's "no partition of relation records found for row" (SQLSTATE 23514, as a CHECK violation is too):
 * told apart by the routine that raises it, which does not depend on the server's message language.
 */
function isMissingPartition(error: unknown): boolean {
  const { code, routine, message } = error as { code?: unknown; routine?: unknown; message?: unknown };
  return (
    code === '23514' &&
    (routine === 'ExecFindPartition' || /no partition of relation "records"/.test(String(message ?? '')))
  );
}

/** PostgreSQL implementation of the domain's `RecordReader`; `db` may be a read replica. */
export function createRecordReader(db: Knex): RecordReader {
  const statements = createPreparedStatements(db);
  return {
    findById: (id) =>
      guardDatabase(async () => {
        const found = await statements.run<{ source: string | null; json: string | null }>(
          'record-by-id-with-source',
          FIND_BY_ID_SQL,
          [id],
        );
        const row = found.rows[0];
        return row?.json == null || row.source === null ? undefined : { json: row.json, source: row.source };
      }, 'select record'),

    list: (query) =>
      guardDatabase(async () => {
        const { name, text, values } = listStatement(query);
        const result = await statements.run<ListedRecord>(name, text, values);
        return result.rows;
      }, 'select records page'),
  };
}

/**
 * The keyset page query for the filters present: one named statement per combination of filters (at most 32),
 * each matching an index whose order is exactly the ORDER BY, so no plan sorts.
 *
 * Bounded in bytes too (`maxBytes`, always bound; 2^53 stands for none): a running sum over the `limit` rows
 * of the keyset query leaves in PostgreSQL every row after the first that no longer fits, by `pageOf`'s rule
 * (lib/records/page.ts): row n goes out when n <= 2 or the rows before it hold at most `maxBytes`, which is
 * every row a page can show and the one after them, so the caller still learns that more follow. The window
 * reads the inner query in its own order (no sort); PostgreSQL still builds the JSON of all `limit` rows (it
 * cannot stop a scan on a sum), but sends only what fits.
 */
function listStatement(query: ListQuery): { name: string; text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  let shape = '';
  const add = (flag: string, condition: (n: number) => string, value: unknown) => {
    values.push(value);
    where.push(condition(values.length));
    shape += flag;
  };
  if (query.source !== undefined) add('s', (n) => `r.source = $${n}`, query.source);
  if (query.type !== undefined) add('t', (n) => `r.type = $${n}`, query.type);
  if (query.from !== undefined) add('f', (n) => `r."timestamp" >= $${n}::timestamptz`, query.from);
  if (query.to !== undefined) add('u', (n) => `r."timestamp" < $${n}::timestamptz`, query.to);
  if (query.after !== undefined) {
    values.push(query.after.timestamp, query.after.id);
    where.push(`(r."timestamp", r.id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
    shape += 'a';
  }
  values.push(query.limit, query.maxBytes ?? Number.MAX_SAFE_INTEGER);
  const limit = `$${values.length - 1}`;
  const maxBytes = `$${values.length}::bigint`;
  const text = `SELECT k.id::text AS id, ds_utc_text(k."timestamp") AS timestamp, k.json, k.bytes
    FROM (SELECT p.id, p."timestamp", p.json, octet_length(p.json) AS bytes,
                 sum(octet_length(p.json)) OVER w - octet_length(p.json) AS before, row_number() OVER w AS n
          FROM (SELECT r.id, r."timestamp", ${RECORD_JSON} AS json
                FROM records r ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
                ORDER BY r."timestamp" DESC, r.id DESC LIMIT ${limit}) p
          WINDOW w AS (ORDER BY p."timestamp" DESC, p.id DESC ROWS UNBOUNDED PRECEDING)) k
    WHERE k.n <= 2 OR k.before <= ${maxBytes}
    ORDER BY k."timestamp" DESC, k.id DESC`;
  return { name: `list-records-bytes-${shape || 'all'}`, text, values };
}
