import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig, type ServiceConfig } from '#lib/config';

const DATABASE_URL = 'postgres://app:secret@db.internal:5432/data';
// A token issuer, which a serving process cannot start without (or AUTH_MODE=none).
const ISSUER = {
  AUTH_JWKS_URL: 'https://issuer.example/.well-known/jwks.json',
  AUTH_ISSUER: 'https://issuer.example/',
  AUTH_AUDIENCE: 'data-service',
};

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
        readMaxStalenessSeconds: 30,
        poolMax: 10,
        connectTimeoutMs: 2_000,
        statementTimeoutMs: 10_000,
      },
      http: {
        host: '0.0.0.0',
        port: 8080,
        bodyLimitBytes: 1024 * 1024,
        compressMinBytes: 8 * 1024,
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
      list: { maxBytes: 4 * 1024 * 1024 },
      storage: { partitionPrecreateDays: 7, retentionDays: 0, idempotencyTtlHours: 24 },
      cursorSecret: expect.any(String) as unknown as string,
      auth: {
        mode: 'jwt',
        ...{ jwksUrl: ISSUER.AUTH_JWKS_URL, issuer: ISSUER.AUTH_ISSUER, audience: ISSUER.AUTH_AUDIENCE },
        algorithms: ['ES256', 'RS256'],
        clockToleranceSeconds: 30,
        scopeClaim: 'scope',
        tokenCacheEntries: 10_000,
        tokenCacheSeconds: 60,
        jwksRefreshSeconds: 600,
        jwksCooldownSeconds: 30,
        jwksTimeoutMs: 2_000,
      },
      cors: { allowedOrigins: [], maxAgeSeconds: 600 },
      rateLimit: { perSecond: 1_000, burst: 2_000, burstWindowSeconds: 10 },
      redis: undefined,
      cache: {
        recordTtlSeconds: 86_400,
        negativeTtlSeconds: 5,
        listTtlSeconds: 2,
        valueMaxBytes: 1024 * 1024,
        breakerFailureThreshold: 5,
        breakerResetMs: 5_000,
      },
      kafka: undefined,
      relay: {
        enabled: true,
        batchSize: 2_000,
        batchBytes: 4 * 1024 * 1024,
        maxRequestBytes: undefined,
        pollIntervalMs: 100,
        maxBackoffMs: 5_000,
      },
      groupCommit: {
        enabled: true,
        maxBatchRecords: 1_000,
        windowMs: 1,
        concurrency: 2,
        maxQueuedRecords: 20_000,
        deadlineMs: 10_000,
      },
      tracing: { otlpEndpoint: undefined, sampleRatio: 0.01, trustIncoming: false },
      responseTier: { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 },
      archive: undefined,
    };
    expect(loadConfig({ ...ISSUER, DATABASE_URL })).toEqual(expected);
  });

  it('configures the archive only with S3_BUCKET, and refuses one that could still take writes', () => {
    expect(loadConfig({ ...ISSUER, DATABASE_URL, ARCHIVE_AFTER_DAYS: '3' }).archive).toBeUndefined();
    expect(
      loadConfig({ ...ISSUER, DATABASE_URL, S3_BUCKET: 'cold-records', S3_FORCE_PATH_STYLE: '1', S3_SSE: 'aws:kms' })
        .archive,
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
    expect(() => loadConfig({ ...ISSUER, DATABASE_URL, S3_BUCKET: 'cold-records', ARCHIVE_AFTER_DAYS: '7' })).toThrow(
      /ARCHIVE_AFTER_DAYS \(7\) must exceed RECORD_MAX_PAST_DAYS \(7\)/,
    );
    expect(() =>
      loadConfig({ ...ISSUER, DATABASE_URL, S3_BUCKET: 'Bad_Bucket', S3_SSE: 'rot13', ARCHIVE_PREFIX: '/x' }),
    ).toThrow(/S3_BUCKET must be an S3 bucket name[\s\S]*S3_SSE[\s\S]*ARCHIVE_PREFIX/);
  });

  it('refuses a future window the partitions made ahead cannot cover, naming both variables', () => {
    expect(
      loadConfig({ ...ISSUER, DATABASE_URL, PARTITION_PRECREATE_DAYS: '2', RECORD_MAX_FUTURE_HOURS: '24' }).records
        .maxFutureMs,
    ).toBe(24 * 3_600_000);
    expect(() =>
      loadConfig({ ...ISSUER, DATABASE_URL, PARTITION_PRECREATE_DAYS: '2', RECORD_MAX_FUTURE_HOURS: '25' }),
    ).toThrow(/RECORD_MAX_FUTURE_HOURS \(25\) must be at most \(PARTITION_PRECREATE_DAYS − 1\) × 24 = 24/);
    expect(() => loadConfig({ ...ISSUER, DATABASE_URL, PARTITION_PRECREATE_DAYS: '1' })).toThrow(
      /RECORD_MAX_FUTURE_HOURS \(24\) must be at most/,
    );
  });

  it('keeps the queue-proxy-safe keep-alive default above 90 s', () => {
    expect(loadConfig({ ...ISSUER, DATABASE_URL }).http.keepAliveTimeoutMs).toBeGreaterThan(90_000);
  });

  it('converts and maps every variable, ignoring unrelated ones', () => {
    const config = loadConfig({
      PATH: '/usr/bin',
      K_SERVICE: 'ingest',
      K_REVISION: 'ingest-00042',
      LOG_LEVEL: 'debug',
      ...ISSUER,
      DATABASE_URL: 'postgresql://localhost/data',
      DATABASE_READ_URL: 'postgres://replica/data',
      DATABASE_READ_MAX_STALENESS_SECONDS: '5',
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
      database: {
        url: 'postgresql://localhost/data',
        readUrl: 'postgres://replica/data',
        readMaxStalenessSeconds: 5,
        poolMax: 20,
      },
      http: { host: '127.0.0.1', port: 9090 },
      records: { maxBatchRecords: 50, maxPastMs: 2 * 86_400_000, maxFutureMs: 0 },
      storage: { retentionDays: 3 },
      cursorSecret: 'sixteen-chars-ok',
    });
    expect(config).not.toHaveProperty('PATH');
  });

  it('takes URLs as the clients parse them, and only with their own schemes', () => {
    expect(
      problemsOf({
        ...ISSUER,
        DATABASE_URL: 'mysql://app@db/data',
        REDIS_URL: 'http://cache:6379',
        AUTH_JWKS_URL: 'not a url',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector',
      }),
    ).toEqual([
      'DATABASE_URL must be a valid uri with a scheme matching the postgres|postgresql pattern',
      'AUTH_JWKS_URL must be a valid uri',
      'REDIS_URL must be a valid uri with a scheme matching the redis|rediss pattern',
      'OTEL_EXPORTER_OTLP_ENDPOINT must be a valid uri with a scheme matching the http|https pattern',
    ]);
    const config = loadConfig({
      ...ISSUER,
      DATABASE_URL: 'postgresql://u:p%40ss@[::1]:5432/d',
      REDIS_URL: 'rediss://r',
    });
    expect(config.database.url).toBe('postgresql://u:p%40ss@[::1]:5432/d');
    expect(config.redis?.url).toBe('rediss://r');
  });

  it('reads Redis Cluster seeds with AUTH and TLS, and refuses a user without a password', () => {
    const config = loadConfig({
      ...ISSUER,
      DATABASE_URL,
      REDIS_CLUSTER_NODES: '10.0.0.1:6379,10.0.0.2:6380',
      REDIS_USERNAME: 'cache',
      REDIS_PASSWORD: 'p@ss word',
      REDIS_TLS: '1',
    });
    expect(config.redis).toMatchObject({
      url: undefined,
      clusterNodes: ['10.0.0.1:6379', '10.0.0.2:6380'],
      username: 'cache',
      password: 'p@ss word',
      tls: true,
    });
    expectNamed(problemsOf({ ...ISSUER, DATABASE_URL, REDIS_URL: 'redis://r:6379', REDIS_USERNAME: 'cache' }), [
      'REDIS_USERNAME',
      'REDIS_PASSWORD',
    ]);
  });

  it('returns a deeply frozen object', () => {
    const config = loadConfig({ ...ISSUER, DATABASE_URL });
    expectDeeplyFrozen(config);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.http.port).toBe(8080);
  });

  it('treats an empty string as unset', () => {
    const config = loadConfig({
      ...ISSUER,
      DATABASE_URL,
      PORT: '',
      LOG_LEVEL: '',
      DATABASE_READ_URL: '',
      CURSOR_SECRET: '',
    });
    expect(config.http.port).toBe(8080);
    expect(config.logLevel).toBe('info');
    expect(config.database.readUrl).toBeUndefined();
    // No built-in secret: a random one per process outside a cluster.
    expect(config.cursorSecret).toHaveLength(43);
    expect(loadConfig({ ...ISSUER, DATABASE_URL }).cursorSecret).not.toBe(config.cursorSecret);
    expectNamed(problemsOf({ ...ISSUER, DATABASE_URL: '' }), ['DATABASE_URL']);
    expectNamed(problemsOf({ ...ISSUER }), ['DATABASE_URL']);
  });

  it('names every invalid variable in one ConfigError', () => {
    const names = {
      ...ISSUER,
      DATABASE_URL: 'mysql://db/data',
      DATABASE_READ_URL: 'not a url',
      DATABASE_READ_MAX_STALENESS_SECONDS: '0',
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
    const wrong = Object.keys(names).filter((name) => !(name in ISSUER));
    expectNamed(error.problems, wrong);
    for (const name of wrong) expect(error.message).toContain(name);
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
    expectNamed(problemsOf({ ...ISSUER, DATABASE_URL, [name]: value }), [name]);
  });

  it('refuses RETENTION_DAYS not above RECORD_MAX_PAST_DAYS, and 0 means keep everything', () => {
    expectNamed(problemsOf({ ...ISSUER, DATABASE_URL, RETENTION_DAYS: '7' }), [
      'RETENTION_DAYS',
      'RECORD_MAX_PAST_DAYS',
    ]);
    expectNamed(problemsOf({ ...ISSUER, DATABASE_URL, RETENTION_DAYS: '10', RECORD_MAX_PAST_DAYS: '30' }), [
      'RETENTION_DAYS',
      'RECORD_MAX_PAST_DAYS',
    ]);
    expect(loadConfig({ ...ISSUER, DATABASE_URL, RETENTION_DAYS: '8' }).storage.retentionDays).toBe(8);
    expect(
      loadConfig({ ...ISSUER, DATABASE_URL, RETENTION_DAYS: '0', RECORD_MAX_PAST_DAYS: '3650' }).storage.retentionDays,
    ).toBe(0);
  });

  it('reports a RETENTION_DAYS conflict together with other invalid variables', () => {
    const problems = problemsOf({ ...ISSUER, DATABASE_URL, RETENTION_DAYS: '3', PORT: 'http' });
    expect(problems.some((p) => p.includes('PORT'))).toBe(true);
    expect(problems.some((p) => p.includes('RETENTION_DAYS'))).toBe(true);
  });

  it('refuses to serve without a token issuer unless AUTH_MODE=none says so', () => {
    const problems = problemsOf({ DATABASE_URL });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE are not set.*AUTH_MODE=none/);
    expectNamed(problemsOf({ DATABASE_URL, AUTH_JWKS_URL: ISSUER.AUTH_JWKS_URL }), ['AUTH_ISSUER', 'AUTH_AUDIENCE']);
    expect(loadConfig({ DATABASE_URL, AUTH_MODE: 'none' }).auth).toEqual({ mode: 'none' });
    // A process that serves no API (migrate, relay) needs no issuer.
    expect(loadConfig({ DATABASE_URL }, { servesApi: false }).auth).toEqual({ mode: 'none' });
  });

  it('accepts asymmetric token algorithms only', () => {
    expect(loadConfig({ ...ISSUER, DATABASE_URL, AUTH_ALGORITHMS: 'ES256,PS256,EdDSA' }).auth).toMatchObject({
      algorithms: ['ES256', 'PS256', 'EdDSA'],
    });
    for (const algorithms of ['HS256', 'ES256,HS512', 'none', 'RS256,']) {
      expectNamed(problemsOf({ ...ISSUER, DATABASE_URL, AUTH_ALGORITHMS: algorithms }), ['AUTH_ALGORITHMS']);
    }
  });

  it('requires CURSOR_SECRET of the query function in a cluster (K_SERVICE set), and of nothing else', () => {
    const query = { issuesCursors: true };
    let problems: readonly string[] = [];
    try {
      loadConfig({ ...ISSUER, DATABASE_URL, K_SERVICE: 'query' }, query);
    } catch (error) {
      problems = error instanceof ConfigError ? error.problems : [];
    }
    expectNamed(problems, ['CURSOR_SECRET']);
    const given = { ...ISSUER, DATABASE_URL, K_SERVICE: 'query', CURSOR_SECRET: 'x'.repeat(16) };
    expect(loadConfig(given, query).cursorSecret).toBe('x'.repeat(16));
    // Ingest issues no cursors: it needs no secret it would never use.
    expect(loadConfig({ ...ISSUER, DATABASE_URL, K_SERVICE: 'ingest' }).cursorSecret).toHaveLength(43);
  });

  it('refuses a burst below the steady rate', () => {
    expectNamed(problemsOf({ ...ISSUER, DATABASE_URL, RATE_LIMIT_PER_SECOND: '100', RATE_LIMIT_BURST: '50' }), [
      'RATE_LIMIT_BURST',
    ]);
  });
});
