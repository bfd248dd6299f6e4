import { DependencyUnavailableError, IdConflictError, isAppError } from '#lib/errors';
import { SpanKind, withSpan } from '#lib/observability';

// SQLSTATE classes and codes that mean "the database cannot serve right now", not "this request is wrong".
const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '53', '57', '58']);
const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '55P03', '23514']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  'EAI_AGAIN',
]);

/**
 * Turns a failure of the database client into a `DependencyUnavailableError` (503 + Retry-After) when it is an
 * outage, overload, timeout or a missing partition; anything else is a bug and is rethrown unchanged.
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
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(error.message);
  return transient ? new DependencyUnavailableError('database', error) : error;
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
