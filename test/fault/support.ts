/**
 * What the fault tests share: stopping and starting the shared backing services (scripts/services.ts, run
 * asynchronously so that load keeps flowing while a service goes down), spawning the function bundles with the
 * services' settings, HTTP clients that time every request and bound it, latency percentiles, a Kafka consumer
 * that collects record ids, and /metrics parsing.
 *
 * Every test that stops a service restores it in a `finally` (and `afterAll` calls `restoreServices` as a second
 * net): other suites share these services.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { percentile, run, waitFor } from '../../scripts/processes.ts';
import { OPEN_BUNDLE_ENV } from '../support/auth.ts';
import { createTestDatabase, testDatabaseUrl } from '../support/database.ts';
import {
  bundlePath,
  freePort,
  ROOT,
  type SpawnedProcess,
  sleep,
  spawnNode,
  waitForReady,
  withTimeout,
} from '../support/processes.ts';

export type ServiceName = 'postgres' | 'redis' | 'redis-cluster' | 'kafka' | 'kafka-cluster' | 's3';

/** Runs `scripts/services.ts <command> <service>` without blocking the event loop; rejects on failure or timeout. */
export async function services(command: 'up' | 'down', service: ServiceName, timeoutMs = 90_000): Promise<number> {
  const started = performance.now();
  const result = await run(process.execPath, ['scripts/services.ts', command, service], {
    timeoutMs,
    env: process.env,
  });
  if (result.exitCode !== 0) {
    const why = result.timedOut ? `did not finish within ${timeoutMs} ms` : `exited ${result.exitCode}`;
    throw new Error(`services.ts ${command} ${service} ${why}: ${result.stderr}`);
  }
  return performance.now() - started;
}

/** Brings the given services up (idempotent: quick when they already run); errors are reported, not thrown. */
export async function restoreServices(...names: ServiceName[]): Promise<void> {
  for (const name of names) {
    try {
      await services('up', name);
    } catch (error) {
      console.error(`could not restore ${name}: ${String(error)}`);
    }
  }
}

/** Warns when dist/ is older than the sources it is built from (`node esbuild.config.mjs` rebuilds it). */
export function warnIfBundlesStale(): void {
  const built = statSync(bundlePath('ingest')).mtimeMs;
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((max, entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return Math.max(max, newest(path));
      return entry.name.endsWith('.ts') ? Math.max(max, statSync(path).mtimeMs) : max;
    }, 0);
  const sources = Math.max(newest(join(ROOT, 'lib')), newest(join(ROOT, 'functions')));
  if (sources > built) console.warn('dist/ is older than lib/ or functions/: run `node esbuild.config.mjs` first');
}

export interface Bundle {
  readonly url: string;
  readonly proc: SpawnedProcess;
}

/** Spawns dist/<name>.mjs on a free port with `env` on top of the test database, and waits for /readyz 200. */
export async function startBundle(
  name: 'ingest' | 'query',
  env: Record<string, string | undefined>,
  spawned: SpawnedProcess[],
): Promise<Bundle> {
  const port = await freePort();
  const proc = spawnNode(bundlePath(name), {
    ...OPEN_BUNDLE_ENV,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: testDatabaseUrl(),
    LOG_LEVEL: 'info',
    DRAIN_TIMEOUT_MS: '5000',
    ...env,
  });
  spawned.push(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitForReady(`${url}/readyz`, { since: proc.startedAt, timeoutMs: 20_000, process: proc });
  return { url, proc };
}

export function requireEnv(name: 'KAFKA_BROKERS' | 'REDIS_URL'): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run the fault tests with scripts/run-tests.ts (it starts services)`);
  return value;
}

/** A unique suffix for sources, topics and consumer groups of one run. */
export const runId = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export interface Timed {
  readonly status: number;
  readonly ms: number;
  readonly contentType: string;
  readonly retryAfter: string | null;
  readonly body: string;
  /** Set when no HTTP answer arrived (connection refused or reset, or the timeout fired). */
  readonly error?: string;
}

/** One bounded HTTP request, timed; never throws (a missing answer is `status: 0` with `error`). */
export async function timedFetch(url: string, init: RequestInit = {}, timeoutMs = 5_000): Promise<Timed> {
  const started = performance.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const body = await response.text();
    return {
      status: response.status,
      ms: performance.now() - started,
      contentType: response.headers.get('content-type') ?? '',
      retryAfter: response.headers.get('retry-after'),
      body,
    };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return {
      status: 0,
      ms: performance.now() - started,
      contentType: '',
      retryAfter: null,
      body: '',
      error: cause ?? (error instanceof Error ? error.name : String(error)),
    };
  }
}

/** POSTs one record with a client-chosen id (so an unanswered request can still be looked up). */
export function postRecord(baseUrl: string, source: string, timeoutMs = 5_000): Promise<Timed & { id: string }> {
  const id = randomUUID();
  return timedFetch(
    `${baseUrl}/data`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, source, type: 'fault', payload: { n: 1, text: 'fault test record' } }),
    },
    timeoutMs,
  ).then((result) => ({ ...result, id }));
}

export { percentile };

export const ms = (value: number) => `${value.toFixed(1)} ms`;

export function latencySummary(values: readonly number[]): string {
  return `p50 ${ms(percentile(values, 50))}, p99 ${ms(percentile(values, 99))}, max ${ms(Math.max(...values))}`;
}

/** Runs `task` from `clients` concurrent loops until `shouldStop()`; each loop waits `pauseMs` between calls. */
export async function runClients(
  clients: number,
  shouldStop: () => boolean,
  task: () => Promise<unknown>,
  pauseMs = 0,
): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (!shouldStop()) {
        await task();
        if (pauseMs > 0) await sleep(pauseMs);
      }
    }),
  );
}

/** Polls `check` every `intervalMs` until it returns true; resolves with the elapsed ms, rejects after `timeoutMs`. */
export async function eventually(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
  intervalMs = 250,
): Promise<number> {
  const started = performance.now();
  await waitFor(what, timeoutMs, async () => ((await check()) ? true : undefined), intervalMs);
  return performance.now() - started;
}

/** The value of one Prometheus sample whose labels include every pair in `labels` (undefined when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labelText = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) {
      return Number(line.slice(close + 1).trim());
    }
  }
  return undefined;
}

export async function scrapeMetrics(baseUrl: string): Promise<string> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(2_000) });
  return response.text();
}

function kafkaClient(logs: string[], brokers = requireEnv('KAFKA_BROKERS')): Kafka {
  return new Kafka({
    clientId: 'fault-tests',
    brokers: brokers.split(','),
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    // Generous: right after a broker restart the group coordinator answers "coordinator is loading" for a while.
    retry: { retries: 12, initialRetryTime: 300, maxRetryTime: 3_000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) => {
        logs.push(`${logLevel[level] ?? level} ${log.message}`);
      },
  });
}

/** Waits until `topic` exists on the broker (the ingest function's relay creates it); `brokers` default KAFKA_BROKERS. */
export async function waitForTopic(topic: string, timeoutMs: number, brokers?: string): Promise<void> {
  const logs: string[] = [];
  const admin = kafkaClient(logs, brokers).admin();
  try {
    await withTimeout(admin.connect(), timeoutMs, () => `could not connect to Kafka: ${logs.slice(-5).join('; ')}`);
    await eventually(
      `topic ${topic}`,
      timeoutMs,
      async () => (await admin.listTopics().catch(() => [] as string[])).includes(topic),
      500,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Reads `topic` from the beginning with a fresh consumer group until every id in `wanted` was seen as a record
 * event (message key = record id = the event's `record.id`), or until `timeoutMs`. Resolves with the ids seen.
 */
export async function consumeRecordIds(
  topic: string,
  wanted: ReadonlySet<string>,
  timeoutMs: number,
  brokers?: string,
): Promise<{ seen: Set<string>; messages: number; ms: number; logs: string[] }> {
  const started = performance.now();
  const logs: string[] = [];
  const consumer = kafkaClient(logs, brokers).consumer({ groupId: `fault-tests.${topic}.${runId()}` });
  const seen = new Set<string>();
  let messages = 0;
  let complete: () => void = () => undefined;
  const allSeen = new Promise<void>((resolve) => {
    complete = resolve;
  });
  if (wanted.size === 0) complete();
  try {
    await withTimeout(
      (async () => {
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run({
          eachBatch: async ({ batch }) => {
            for (const message of batch.messages) {
              messages++;
              const key = message.key?.toString();
              if (key === undefined || !wanted.has(key)) continue;
              const event = JSON.parse(message.value?.toString() ?? '{}') as { record?: { id?: string } };
              if (event.record?.id === key) seen.add(key);
            }
            if (seen.size === wanted.size) complete();
          },
        });
      })(),
      timeoutMs,
      () => `the Kafka consumer did not start within ${timeoutMs} ms: ${logs.slice(-5).join('; ')}`,
    );
    const left = Math.max(0, timeoutMs - (performance.now() - started));
    await withTimeout(allSeen, left, () => 'timeout').catch(() => undefined);
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return { seen, messages, ms: performance.now() - started, logs };
}

/** The ids of every record stored under `source` (a fresh one-connection pool, closed again). */
export async function storedIds(source: string): Promise<Set<string>> {
  const db = createTestDatabase(1);
  try {
    const result = await db.raw('SELECT id::text AS id FROM records WHERE source = ?', [source]);
    return new Set((result.rows as Array<{ id: string }>).map((row) => row.id));
  } finally {
    await db.destroy();
  }
}

/** `acknowledged` minus `found`: what an acknowledgement promised and storage or Kafka does not have. */
export const missing = (acknowledged: Iterable<string>, found: ReadonlySet<string>) =>
  [...acknowledged].filter((id) => !found.has(id));
