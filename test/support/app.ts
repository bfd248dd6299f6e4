/**
 * Both functions wired exactly as their main.ts does, on real PostgreSQL, each on its own loopback port.
 * Tests talk to them over real HTTP.
 */

import type { RecordLimits } from '#lib/config';
import { createRecordRepository, type Database } from '#lib/db';
import { buildOpenApiDocument } from '#lib/http';
import { createSilentLogger } from '#lib/observability';
import { createCursorCodec, createIngestService, createQueryService, createRecordValidator } from '#lib/records';
import { createRuntimeServer, type RuntimeServer } from '#lib/runtime';
import { createIngestHandler } from '../../functions/ingest/handler.ts';
import { createQueryHandler } from '../../functions/query/handler.ts';
import { createTestDatabase } from './database.ts';

export const TEST_LIMITS: RecordLimits = {
  maxBatchRecords: 1000,
  payloadMaxBytes: 64 * 1024,
  payloadMaxDepth: 16,
  maxPastMs: 7 * 86_400_000,
  maxFutureMs: 24 * 3_600_000,
};

export interface TestApp {
  readonly ingestUrl: string;
  readonly queryUrl: string;
  readonly db: Database;
  readonly ingest: RuntimeServer;
  readonly query: RuntimeServer;
  close(): Promise<void>;
}

export interface TestAppOptions {
  readonly bodyLimitBytes?: number;
  readonly limits?: Partial<RecordLimits>;
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = createTestDatabase();
  const logger = createSilentLogger();
  const limits = { ...TEST_LIMITS, ...options.limits };
  const bodyLimitBytes = options.bodyLimitBytes ?? 1024 * 1024;
  const store = createRecordRepository({ db, idempotencyTtlHours: 24 });
  const openApi = buildOpenApiDocument(limits);
  const runtime = {
    logger,
    bodyLimitBytes,
    keepAliveTimeoutMs: 95_000,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    readiness: async () => {
      await db.raw('SELECT 1');
      return true;
    },
  };
  const ingest = createRuntimeServer({
    ...runtime,
    functionName: 'ingest',
    handler: createIngestHandler({
      ingest: createIngestService({ store, validator: createRecordValidator(limits) }),
      logger,
      openApi,
      bodyLimitBytes,
    }),
  });
  const query = createRuntimeServer({
    ...runtime,
    functionName: 'query',
    handler: createQueryHandler({
      query: createQueryService({ store, cursors: createCursorCodec('test-cursor-secret-0123456789') }),
      logger,
      openApi,
    }),
  });
  const ingestAddress = await ingest.listen(0, '127.0.0.1');
  const queryAddress = await query.listen(0, '127.0.0.1');
  return {
    ingestUrl: `http://127.0.0.1:${ingestAddress.port}`,
    queryUrl: `http://127.0.0.1:${queryAddress.port}`,
    db,
    ingest,
    query,
    async close() {
      await Promise.all([ingest.drain(5_000), query.drain(5_000)]);
      await db.destroy();
    },
  };
}

/** A source name no other test uses, so each test sees only its own records. */
export const uniqueSource = (label = 'test'): string =>
  `${label}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}`;

/** POSTs JSON (or raw text) to the ingest function. */
export async function postJson(
  app: TestApp,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(`${app.ingestUrl}/data`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

export async function getJson(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(url, { headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : {} };
}

export const isoAgo = (ms: number): string => new Date(Date.now() - ms).toISOString();
