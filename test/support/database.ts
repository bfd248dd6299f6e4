import { createDatabase, type Database, databaseNameOf } from '#lib/db';

/**
 * The test database URL from the environment, refused unless its name says it is for tests: the suite writes
 * and migrates, and must never be pointed at a real database by a stray DATABASE_URL.
 */
export function testDatabaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set; run the suite with `npm test` (it starts PostgreSQL).');
  const name = databaseNameOf(url);
  if (!/test/i.test(name)) {
    throw new Error(`Refusing to run tests against database "${name}": its name must contain "test".`);
  }
  return url;
}

/** A small pool on `url` for a test's own queries; each option as the test needs it. */
export function databaseAt(
  url: string,
  {
    poolMax = 2,
    connectTimeoutMs = 2_000,
    statementTimeoutMs = 10_000,
    applicationName = 'tests',
  }: { poolMax?: number; connectTimeoutMs?: number; statementTimeoutMs?: number; applicationName?: string } = {},
): Database {
  return createDatabase({ url, poolMax, connectTimeoutMs, statementTimeoutMs, applicationName });
}

/** A small pool on the test database. */
export function createTestDatabase(poolMax = 4): Database {
  return databaseAt(testDatabaseUrl(), { poolMax });
}
