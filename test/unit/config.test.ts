import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig, type ServiceConfig } from '#lib/config';

const DATABASE_URL = 'postgres://app:secret@db.internal:5432/data';

function problemsOf(env: Record<string, string | undefined>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

/** Fails unless every one of `names` appears in some problem, and every problem names one of them. */
function expectNamed(problems: readonly string[], names: readonly string[]): void {
  for (const name of names) expect(problems.some((p) => new RegExp(`\\b${name}\\b`).test(p))).toBe(true);
  for (const problem of problems) expect(names.some((name) => problem.includes(name))).toBe(true);
}

function expectDeeplyFrozen(value: unknown, path = 'config'): void {
  if (value === null || typeof value !== 'object') return;
  if (!Object.isFrozen(value)) throw new Error(`${path} is not frozen`);
  for (const [key, child] of Object.entries(value)) expectDeeplyFrozen(child, `${path}.${key}`);
}

describe('loadConfig', () => {
  it('fills in every default when only DATABASE_URL is set', () => {
    const expected: ServiceConfig = {
      service: 'data-service',
      revision: 'local',
      logLevel: 'info',
      database: {
        url: DATABASE_URL,
        readUrl: undefined,
        poolMax: 10,
        connectTimeoutMs: 2_000,
        statementTimeoutMs: 10_000,
      },
      http: {
        host: '0.0.0.0',
        port: 8080,
        bodyLimitBytes: 1024 * 1024,
        keepAliveTimeoutMs: 95_000,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        drainTimeoutMs: 25_000,
      },
      records: {
        maxBatchRecords: 1000,
        payloadMaxBytes: 64 * 1024,
        payloadMaxDepth: 16,
        maxPastMs: 7 * 86_400_000,
        maxFutureMs: 24 * 3_600_000,
      },
      storage: { partitionPrecreateDays: 7, retentionDays: 0, idempotencyTtlHours: 24 },
      cursorSecret: 'data-service-default-cursor-secret',
      redis: undefined,
      cache: {
        recordTtlSeconds: 86_400,
        negativeTtlSeconds: 5,
        listTtlSeconds: 2,
        breakerFailureThreshold: 5,
        breakerResetMs: 5_000,
      },
      kafka: undefined,
      relay: { enabled: true, batchSize: 500, pollIntervalMs: 100, maxBackoffMs: 5_000 },
      groupCommit: { enabled: true, maxBatchRecords: 1_000, windowMs: 1, concurrency: 2, maxQueuedRecords: 20_000 },
      tracing: { otlpEndpoint: undefined, sampleRatio: 0.01 },
      responseTier: { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 },
      archive: undefined,
    };
    expect(loadConfig({ DATABASE_URL })).toEqual(expected);
  });

  it('configures the archive only with S3_BUCKET, and refuses one that could still take writes', () => {
    expect(loadConfig({ DATABASE_URL, ARCHIVE_AFTER_DAYS: '3' }).archive).toBeUndefined();
    expect(
      loadConfig({ DATABASE_URL, S3_BUCKET: 'cold-records', S3_FORCE_PATH_STYLE: '1', S3_SSE: 'aws:kms' }).archive,
    ).toEqual({
      bucket: 'cold-records',
      endpoint: undefined,
      region: 'us-east-1',
      forcePathStyle: true,
      sse: 'aws:kms',
      sseKmsKeyId: undefined,
      afterDays: 30,
      prefix: 'data-service',
      rowGroupRows: 100_000,
      objectRows: 2_000_000,
    });
    expect(() => loadConfig({ DATABASE_URL, S3_BUCKET: 'cold-records', ARCHIVE_AFTER_DAYS: '7' })).toThrow(
      /ARCHIVE_AFTER_DAYS \(7\) must exceed RECORD_MAX_PAST_DAYS \(7\)/,
    );
    expect(() => loadConfig({ DATABASE_URL, S3_BUCKET: 'Bad_Bucket', S3_SSE: 'rot13', ARCHIVE_PREFIX: '/x' })).toThrow(
      /S3_BUCKET must be an S3 bucket name[\s\S]*S3_SSE[\s\S]*ARCHIVE_PREFIX/,
    );
  });

  it('keeps the queue-proxy-safe keep-alive default above 90 s', () => {
    expect(loadConfig({ DATABASE_URL }).http.keepAliveTimeoutMs).toBeGreaterThan(90_000);
  });

  it('converts and maps every variable, ignoring unrelated ones', () => {
    const config = loadConfig({
      PATH: '/usr/bin',
      K_SERVICE: 'ingest',
      K_REVISION: 'ingest-00042',
      LOG_LEVEL: 'debug',
      DATABASE_URL: 'postgresql://localhost/data',
      DATABASE_READ_URL: 'postgres://replica/data',
      DATABASE_POOL_MAX: '20',
      PORT: '9090',
      HOST: '127.0.0.1',
      RECORDS_MAX_BATCH: '50',
      RECORD_MAX_PAST_DAYS: '2',
      RECORD_MAX_FUTURE_HOURS: '0',
      RETENTION_DAYS: '3',
      CURSOR_SECRET: 'sixteen-chars-ok',
    });
    expect(config).toMatchObject({
      service: 'ingest',
      revision: 'ingest-00042',
      logLevel: 'debug',
      database: { url: 'postgresql://localhost/data', readUrl: 'postgres://replica/data', poolMax: 20 },
      http: { host: '127.0.0.1', port: 9090 },
      records: { maxBatchRecords: 50, maxPastMs: 2 * 86_400_000, maxFutureMs: 0 },
      storage: { retentionDays: 3 },
      cursorSecret: 'sixteen-chars-ok',
    });
    expect(config).not.toHaveProperty('PATH');
  });

  it('returns a deeply frozen object', () => {
    const config = loadConfig({ DATABASE_URL });
    expectDeeplyFrozen(config);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.http.port).toBe(8080);
  });

  it('treats an empty string as unset', () => {
    const config = loadConfig({ DATABASE_URL, PORT: '', LOG_LEVEL: '', DATABASE_READ_URL: '', CURSOR_SECRET: '' });
    expect(config.http.port).toBe(8080);
    expect(config.logLevel).toBe('info');
    expect(config.database.readUrl).toBeUndefined();
    expect(config.cursorSecret).toBe('data-service-default-cursor-secret');
    expectNamed(problemsOf({ DATABASE_URL: '' }), ['DATABASE_URL']);
    expectNamed(problemsOf({}), ['DATABASE_URL']);
  });

  it('names every invalid variable in one ConfigError', () => {
    const names = {
      DATABASE_URL: 'mysql://db/data',
      DATABASE_READ_URL: 'not a url',
      DATABASE_POOL_MAX: '0',
      DATABASE_CONNECT_TIMEOUT_MS: '1.5',
      LOG_LEVEL: 'loud',
      HOST: 'not a host!',
      PORT: 'http',
      BODY_LIMIT_BYTES: '100',
      KEEP_ALIVE_TIMEOUT_MS: '-1',
      RECORDS_MAX_BATCH: '10001',
      RECORD_PAYLOAD_MAX_DEPTH: 'deep',
      RECORD_MAX_FUTURE_HOURS: '1e9',
      RETENTION_DAYS: '-3',
      IDEMPOTENCY_TTL_HOURS: '0',
      CURSOR_SECRET: 'short',
    };
    let thrown: unknown;
    try {
      loadConfig(names);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const error = thrown as ConfigError;
    expect(error.name).toBe('ConfigError');
    expectNamed(error.problems, Object.keys(names));
    for (const name of Object.keys(names)) expect(error.message).toContain(name);
  });

  it.each([
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['DATABASE_POOL_MAX', '1001'],
    ['DATABASE_URL', 'db.internal:5432'],
    ['RECORD_PAYLOAD_MAX_BYTES', '1'],
    ['RECORD_MAX_PAST_DAYS', '0'],
    ['PARTITION_PRECREATE_DAYS', 'seven'],
    ['K_SERVICE', 'x'.repeat(201)],
  ])('refuses %s=%j', (name, value) => {
    expectNamed(problemsOf({ DATABASE_URL, [name]: value }), [name]);
  });

  it('refuses RETENTION_DAYS not above RECORD_MAX_PAST_DAYS, and 0 means keep everything', () => {
    expectNamed(problemsOf({ DATABASE_URL, RETENTION_DAYS: '7' }), ['RETENTION_DAYS', 'RECORD_MAX_PAST_DAYS']);
    expectNamed(problemsOf({ DATABASE_URL, RETENTION_DAYS: '10', RECORD_MAX_PAST_DAYS: '30' }), [
      'RETENTION_DAYS',
      'RECORD_MAX_PAST_DAYS',
    ]);
    expect(loadConfig({ DATABASE_URL, RETENTION_DAYS: '8' }).storage.retentionDays).toBe(8);
    expect(loadConfig({ DATABASE_URL, RETENTION_DAYS: '0', RECORD_MAX_PAST_DAYS: '3650' }).storage.retentionDays).toBe(
      0,
    );
  });

  it('reports a RETENTION_DAYS conflict together with other invalid variables', () => {
    const problems = problemsOf({ DATABASE_URL, RETENTION_DAYS: '3', PORT: 'http' });
    expect(problems.some((p) => p.includes('PORT'))).toBe(true);
    expect(problems.some((p) => p.includes('RETENTION_DAYS'))).toBe(true);
  });
});
