/**
 * Which database client failures are outages (503 + Retry-After, retried by clients) and which are faults (500):
 * node-pg's own timeouts say "the server did not answer", so a frozen or unreachable PostgreSQL is a 503.
 */
import { describe, expect, it } from '@jest/globals';
import { toDatabaseError } from '#lib/db';
import { DependencyUnavailableError } from '#lib/errors';

const withCode = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

describe('toDatabaseError', () => {
  it.each([
    ['a connection the server never finished (node-pg connectionTimeoutMillis)', withCode('timeout expired')],
    ['a query the server never answered (node-pg query_timeout)', withCode('Query read timeout')],
    ['statement_timeout', withCode('canceling statement due to statement timeout', '57014')],
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a lost connection', withCode('Connection terminated unexpectedly')],
    ['a serialization failure', withCode('could not serialize access', '40001')],
  ])('answers %s as an outage', (_, error) => {
    expect(toDatabaseError(error)).toBeInstanceOf(DependencyUnavailableError);
  });

  it.each([
    ['a syntax error', withCode('syntax error at or near "SELEC"', '42601')],
    ['a missing partition left after its creation', withCode('no partition of relation "records" found', '23514')],
  ])('answers %s as a fault', (_, error) => {
    const mapped = toDatabaseError(error);
    expect(mapped).not.toBeInstanceOf(DependencyUnavailableError);
    expect((mapped as Error).name).toBe('DatabaseFailure');
  });
});
