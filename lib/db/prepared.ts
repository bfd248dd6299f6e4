import type { Knex } from 'knex';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import { WriteAbandonedError } from '#lib/errors';
import type { WriteGuard } from '#lib/records';

/**
 * Runs hot statements as named prepared statements of node-pg on connections from knex's own pool: PostgreSQL
 * parses and plans them once per connection instead of once per call (a primary-key SELECT measured 88 → 32 µs
 * of server CPU). knex's `raw` cannot name statements, hence this narrow door past it.
 */
export interface PreparedStatements {
  run<Row extends QueryResultRow>(name: string, text: string, values: readonly unknown[]): Promise<QueryResult<Row>>;
  /**
   * The statement in a transaction of its own that commits only if `guard.claimCommit()` says so right before
   * COMMIT; otherwise it rolls back and throws `WriteAbandonedError`. A COMMIT whose connection fails is resolved
   * by looking for the statement's first created id once the old session has ended (`createdIdOf`).
   */
  guarded<Row extends QueryResultRow>(
    name: string,
    text: string,
    values: readonly unknown[],
    guard: WriteGuard,
    createdIdOf?: (rows: readonly Row[]) => string | undefined,
  ): Promise<QueryResult<Row>>;
}

/** Prepared statements over `db`'s pool (the connection is returned to the pool after each statement). */
export function createPreparedStatements(db: Knex): PreparedStatements {
  return {
    async run<Row extends QueryResultRow>(name: string, text: string, values: readonly unknown[]) {
      const connection = (await db.client.acquireConnection()) as PoolClient;
      try {
        return await connection.query<Row>({ name, text, values: [...values] });
      } finally {
        db.client.releaseConnection(connection);
      }
    },

    async guarded<Row extends QueryResultRow>(
      name: string,
      text: string,
      values: readonly unknown[],
      guard: WriteGuard,
      createdIdOf: (rows: readonly Row[]) => string | undefined = (rows) =>
        (rows[0] as { id?: string } | undefined)?.id,
    ) {
      const connection = (await db.client.acquireConnection()) as PoolClient & { processID?: number };
      let open = false;
      try {
        await connection.query('BEGIN');
        open = true;
        const result = await connection.query<Row>({ name, text, values: [...values] });
        if (!guard.claimCommit()) throw new WriteAbandonedError('The write was given up before its commit');
        open = false;
        try {
          await connection.query('COMMIT');
        } catch (error) {
          const id = createdIdOf(result.rows);
          if (id === undefined || !(await committedAfterAll(db, connection.processID, id))) throw error;
        }
        return result;
      } finally {
        if (open) await connection.query('ROLLBACK').catch(() => undefined);
        db.client.releaseConnection(connection);
      }
    },
  };
}

/**
 * Whether a transaction whose COMMIT lost its connection committed anyway: once its session `pid` has ended
 * (checked on a fresh connection, for a few seconds at most), the registry holds `id` exactly if it did. Throws
 * when that cannot be known, and the caller answers 503 as for any outage.
 */
async function committedAfterAll(db: Knex, pid: number | undefined, id: string): Promise<boolean> {
  for (let attempt = 0; attempt < 20 && pid !== undefined; attempt++) {
    const alive = await db.raw('SELECT 1 FROM pg_stat_activity WHERE pid = ?', [pid]);
    if ((alive.rows as unknown[]).length === 0) break;
    if (attempt === 19) throw new Error('the session of an interrupted COMMIT is still alive');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const found = await db.raw('SELECT 1 FROM record_ids WHERE id = ?::uuid', [id]);
  return (found.rows as unknown[]).length > 0;
}

/** `?` placeholders (knex's) as `$1…$n` (PostgreSQL's), so one statement text serves both paths. */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}
