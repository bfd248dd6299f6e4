import { DependencyUnavailableError, IdConflictError, isAppError } from '#lib/errors';
import { SpanKind, withSpan } from '#lib/observability';

// SQLSTATE classes and codes that mean "the database cannot serve right now", not "this request is wrong".
const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '53', '57', '58']);
// 23514 is not among them: a write that finds no partition for its day creates it and writes again
// (record-repository.ts), and when it still fails, a retry would fail the same way.
const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '55P03']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  'EAI_AGAIN',
]);

/** A database failure as it may be logged: what went wrong, never the statement, its bindings or row values. */
export class DatabaseFailure extends Error {
  readonly code: string | undefined;
  readonly routine: string | undefined;
  readonly table: string | undefined;
  readonly constraint: string | undefined;

  constructor(error: Error & Record<string, unknown>) {
    const code = typeof error.code === 'string' ? error.code : undefined;
    super(safeMessage(error, code));
    this.name = 'DatabaseFailure';
    this.code = code;
    const text = (key: string) => (typeof error[key] === 'string' ? (error[key] as string) : undefined);
    this.routine = text('routine');
    this.table = text('table');
    this.constraint = text('constraint');
  }
}

/**
 * knex prefixes a failed statement's message with the statement and its bindings (record payloads), and
 * PostgreSQL's messages of data exceptions and constraint violations (classes 22, 23) quote row values, as do
 * `detail` and `where`: none of that may reach a log line. What is left names the failure well enough to act on.
 */
function safeMessage(error: Error, code: string | undefined): string {
  if (code === undefined) {
    // knex's own errors (undefined bindings, pool timeouts) quote the statement: only their first line is kept.
    const first = error.message.split('\n')[0] ?? '';
    return first.length > 120 || /\b(select|insert|update|delete|with)\b/i.test(first)
      ? `${error.name} (database client)`
      : first;
  }
  if (/^2[23]/.test(code)) return `PostgreSQL data or constraint error (SQLSTATE ${code})`;
  // PostgreSQL's message is one line, after knex's "<statement> - "; the statement may hold " - " too.
  const original = error.message;
  const lastLine = original.slice(original.lastIndexOf('\n') + 1);
  const knexSeparator = lastLine.lastIndexOf(' - ');
  const message = knexSeparator >= 0 ? lastLine.slice(knexSeparator + 3) : lastLine;
  return `${message.length > 200 ? `${message.slice(0, 200)}…` : message} (SQLSTATE ${code})`;
}

/**
 * Turns a failure of the database client into a `DependencyUnavailableError` (503 + Retry-After) when it is an
 * outage, overload or timeout, and into a `DatabaseFailure` (a 500, logged without statement, bindings or values)
 * otherwise.
 */
export function toDatabaseError(error: unknown): unknown {
  if (isAppError(error) || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  // Raised by ds_insert_records (migration 0006) with the conflicting ids as its DETAIL.
  if (code === 'DS409') {
    const detail = (error as { detail?: unknown }).detail;
    return new IdConflictError(typeof detail === 'string' ? detail.split(',') : []);
  }
  const transient =
    error.name === 'KnexTimeoutError' ||
    (typeof code === 'string' &&
      (NETWORK_CODES.has(code) || TRANSIENT_SQLSTATES.has(code) || TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2)))) ||
    // node-pg's own words for a server that does not answer: on connecting ("timeout expired"), or to a query
    // (query_timeout, lib/db/database.ts).
    /Connection terminated|connection timeout|Client has encountered a connection error|timeout expired|Query read timeout/i.test(
      error.message,
    );
  const failure = new DatabaseFailure(error as Error & Record<string, unknown>);
  return transient ? new DependencyUnavailableError('database', failure) : failure;
}

/**
 * Runs `work` in a client span named for the operation, translating database outages into
 * `DependencyUnavailableError`.
 */
export function guardDatabase<T>(work: () => Promise<T>, operation = 'query'): Promise<T> {
  return withSpan(
    `postgresql ${operation}`,
    { 'db.system.name': 'postgresql', 'db.operation.name': operation },
    SpanKind.CLIENT,
    async () => {
      try {
        return await work();
      } catch (error) {
        throw toDatabaseError(error);
      }
    },
  );
}
