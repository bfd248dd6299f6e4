import knex, { type Knex } from 'knex';

export interface DatabaseOptions {
  readonly url: string;
  readonly poolMax: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  /** Shown in pg_stat_activity, so operators can tell the functions' connections apart. */
  readonly applicationName: string;
  /** Where knex's own warnings go (it prints to the console otherwise). */
  readonly logger?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

export type Database = Knex;

// How much longer than statement_timeout the client waits for an answer before giving up on its own.
const CLIENT_TIMEOUT_MARGIN_MS = 2_000;

/** A knex instance on node-pg with bounded waits, so a database outage fails requests fast instead of hanging. */
export function createDatabase(options: DatabaseOptions): Database {
  return knex({
    client: 'pg',
    connection: {
      connectionString: options.url,
      connectionTimeoutMillis: options.connectTimeoutMs,
      statement_timeout: options.statementTimeoutMs,
      // statement_timeout is the server's: a server that is frozen (SIGSTOP, a stalled host) or cut off mid-query
      // never sends it, and the query would wait for as long as TCP keeps the connection. The client's own bound,
      // just above it, answers instead (a 503, lib/db/errors.ts).
      query_timeout: options.statementTimeoutMs + CLIENT_TIMEOUT_MARGIN_MS,
      application_name: options.applicationName,
      keepAlive: true,
    },
    pool: { min: 0, max: options.poolMax, idleTimeoutMillis: 30_000 },
    acquireConnectionTimeout: options.connectTimeoutMs,
    log: {
      warn: (message: unknown) => options.logger?.warn({ knex: String(message) }, 'knex warning'),
      error: (message: unknown) => options.logger?.warn({ knex: String(message) }, 'knex error'),
      deprecate: (message: unknown) => options.logger?.debug({ knex: String(message) }, 'knex deprecation'),
      debug: (message: unknown) => options.logger?.debug({ knex: String(message) }, 'knex debug'),
    },
  });
}

/** Resolves when a round trip to the server succeeds; used by readiness. */
export async function pingDatabase(db: Database): Promise<void> {
  await db.raw('SELECT 1');
}

/**
 * Readiness of a function that needs this database: `ready()` pings it (the runtime caches the answer for a
 * second), and `up()` reports the last answer for `dependency_up{dependency="postgres"}`.
 */
export function createDatabaseProbe(db: Database): { ready(): Promise<boolean>; up(): boolean } {
  let up = true;
  return {
    ready: () =>
      pingDatabase(db).then(
        () => (up = true),
        () => (up = false),
      ),
    up: () => up,
  };
}

/** The database name of a connection URL (tests refuse to run against one that does not look like a test database). */
export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** Pool occupancy of a knex instance, for saturation metrics. */
export function poolStats(db: Database): { used: number; free: number; pending: number; max: number } {
  const pool = (db.client as { pool?: TarnPool }).pool;
  if (pool === undefined) return { used: 0, free: 0, pending: 0, max: 0 };
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires(), max: pool.max };
}

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  readonly max: number;
}
