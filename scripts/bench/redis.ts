/**
 * Redis for the bench: the GET ceiling with redis-benchmark (Debian's redis-tools) on the services' Redis, and the
 * removal of every key the run created (they all start with the run's prefix).
 */
import { Redis } from 'ioredis';
import { runOk, runTimed } from './proc.ts';

export interface RedisTarget {
  readonly host: string;
  readonly port: number;
}

export interface RedisBenchOutcome {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly seconds: number;
  /** CPU seconds redis-benchmark itself used. */
  readonly cpuSeconds: number;
}

/** A record-sized value under `key`, as the query function caches one. */
export async function seedKey(target: RedisTarget, key: string): Promise<void> {
  const value = JSON.stringify({
    id: '00000000-0000-4000-8000-000000000000',
    source: 'bench-one',
    type: 'reading',
    timestamp: '2026-01-01T00:00:00.000Z',
    payload: { seq: 1, unit: 'C', value: 21.5 },
    received_at: '2026-01-01T00:00:00.000123Z',
  });
  await runOk('redis-cli', ['-h', target.host, '-p', String(target.port), 'SET', key, value, 'EX', '3600'], {
    timeoutMs: 10_000,
  });
}

/** `redis-benchmark … GET key`, single-threaded, `requests` in total; parses its CSV line. */
export async function redisGet(
  target: RedisTarget,
  key: string,
  clients: number,
  requests: number,
): Promise<RedisBenchOutcome> {
  const started = performance.now();
  const result = await runTimed(
    'redis-benchmark',
    ['-h', target.host, '-p', String(target.port), '-c', String(clients), '-n', String(requests), '--csv', 'GET', key],
    { timeoutMs: 120_000 },
  );
  const seconds = (performance.now() - started) / 1000;
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const line = result.stdout
    .split('\n')
    .find((l) => l.startsWith('"GET'))
    ?.split(',')
    .map((v) => v.replaceAll('"', ''));
  if (result.code !== 0 || line === undefined) {
    throw new Error(`redis-benchmark failed (${result.code}):\n${result.stdout}${result.stderr}`);
  }
  return {
    requests,
    rps: Number(line[1]),
    p50Ms: Number(line[4]),
    p99Ms: Number(line[6]),
    seconds,
    cpuSeconds: result.cpuSeconds,
  };
}

/** Unlinks every key matching `prefix*`; returns how many. */
export async function deleteKeys(target: RedisTarget, prefix: string): Promise<number> {
  const redis = new Redis({ host: target.host, port: target.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}
