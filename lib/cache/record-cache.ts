import { createHash, randomUUID } from 'node:crypto';
import type { CacheConfig } from '#lib/config';
import { type Logger, SpanKind, withSpan } from '#lib/observability';
import type { PageDocument, PageKey, RecordDocument, WriteListener } from '#lib/records';
import { type BreakerState, createCircuitBreaker } from './circuit-breaker.ts';
import type { RedisClient } from './redis-client.ts';

export type CacheLookup<T> =
  | { readonly kind: 'hit'; readonly value: T }
  | { readonly kind: 'absent' }
  | { readonly kind: 'miss' }
  /** Not cached, and a write of this id has been acknowledged recently. */
  | { readonly kind: 'written' };

/** A page lookup also returns the token under which a freshly computed page must be stored. */
export interface PageLookup {
  readonly page: PageDocument | undefined;
  readonly token: string | undefined;
}

/**
 * Redis in front of PostgreSQL. It is an accelerator, never a source of truth: every method is best effort,
 * bounded in time, and never throws; an unavailable Redis behaves as a miss.
 */
export interface RecordCache extends WriteListener {
  getRecord(id: string): Promise<CacheLookup<RecordDocument>>;
  putRecord(id: string, document: RecordDocument): Promise<void>;
  /** Remembers briefly that no record has this id (cleared by `recordsWritten`). */
  putAbsent(id: string): Promise<void>;
  getPage(key: PageKey): Promise<PageLookup>;
  putPage(key: PageKey, token: string, page: PageDocument): Promise<void>;
}

export interface RecordCacheOptions {
  readonly redis: RedisClient;
  readonly config: CacheConfig;
  readonly keyPrefix: string;
  readonly logger: Logger;
  readonly onBreakerChange?: (state: BreakerState) => void;
}

export interface CacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly errorsOrSkips: number;
  /** Whether the client is connected and ready (what `dependency_up{redis}` reports, with the breaker). */
  readonly connected: boolean;
  readonly pendingInvalidations: number;
  readonly breaker: BreakerState;
}

export interface RedisRecordCache extends RecordCache {
  stats(): CacheStats;
  close(): void;
}

const ABSENT = '-';
/** Set by a write on the ids it created: a reader that looked before the write cannot cache an absence over it. */
const WRITTEN = '+';
const RETRY_INVALIDATIONS_MS = 500;

/**
 * Redis cache-aside for records and list pages.
 *
 * - By id: the record JSON with a long TTL (records are immutable), or a short-lived absence marker (set only
 *   if the key is empty). Before the client is answered, every write replaces the key of each id it created
 *   with a short-lived "written" marker, which a read that began before the write can no longer overwrite with
 *   an absence; a write that cannot reach Redis retries until it succeeds or any absence has expired, so a
 *   cached 404 outlives a write by at most the negative TTL, and only across a Redis outage.
 * - List pages: stored with the version of their scope (`{src:<source>}` or `{all}`) that was current when the
 *   query began; writes bump the versions of the sources they touch and of `{all}`, so a page computed before a
 *   write is never served after it. Version and page share a hash tag, so one MGET reads both in Redis Cluster.
 * - Everything goes through a circuit breaker: with Redis down, calls are skipped without waiting for timeouts.
 * - Nothing larger than `valueMaxBytes` is written (a page or record above it is served, just not cached): one
 *   large value would hold Redis's single thread and the connection every other command shares.
 */
type MarkWritten = (
  records: readonly string[],
  versions: readonly string[],
  written: string,
  writtenTtlSeconds: number,
  token: string,
  versionTtlMs: number,
) => Promise<unknown>;

/** SET each record key to `written` (EX) and each version key to a fresh `token` (PX), in one EVALSHA. */
const MARK_WRITTEN_LUA = `
local records = tonumber(ARGV[1])
for i = 1, #KEYS do
  if i <= records then
    redis.call('SET', KEYS[i], ARGV[2], 'EX', ARGV[3])
  else
    redis.call('SET', KEYS[i], ARGV[4], 'PX', ARGV[5])
  end
end
return #KEYS`;

function defineMarkWritten(redis: RedisClient): MarkWritten {
  // ioredis sends EVALSHA and falls back to EVAL once when the script is not (or no longer) loaded.
  redis.defineCommand('markWritten', { lua: MARK_WRITTEN_LUA });
  const call = (
    redis as unknown as { markWritten(...args: Array<string | number>): Promise<unknown> }
  ).markWritten.bind(redis);
  return (records, versions, written, writtenTtlSeconds, token, versionTtlMs) =>
    call(
      records.length + versions.length,
      ...records,
      ...versions,
      records.length,
      written,
      writtenTtlSeconds,
      token,
      versionTtlMs,
    );
}

export function createRecordCache(options: RecordCacheOptions): RedisRecordCache {
  const { redis, config, keyPrefix, logger } = options;
  const breaker = createCircuitBreaker({
    failureThreshold: config.breakerFailureThreshold,
    resetMs: config.breakerResetMs,
    onStateChange: (state) => {
      logger.warn({ breaker: state }, `redis circuit breaker ${state}`);
      options.onBreakerChange?.(state);
    },
  });
  let hits = 0;
  let misses = 0;
  let errorsOrSkips = 0;
  const SKIPPED = Symbol('skipped');
  const guarded = async <T>(operation: string, call: () => Promise<T>): Promise<T | typeof SKIPPED> => {
    // Not connected (yet, or any more): skip without a failure, so a cold start cannot open the breaker.
    if (redis.status !== 'ready') {
      errorsOrSkips++;
      return SKIPPED;
    }
    const traced = () =>
      withSpan(
        `redis ${operation}`,
        { 'db.system.name': 'redis', 'db.operation.name': operation },
        SpanKind.CLIENT,
        call,
      );
    const result = await breaker.run<T | typeof SKIPPED>(traced, SKIPPED);
    if (result === SKIPPED) errorsOrSkips++;
    return result;
  };

  const recordKey = (id: string) => `${keyPrefix}rec:${id}`;
  const scopeOf = (key: PageKey) => (key.filter.source === undefined ? '{all}' : `{src:${key.filter.source}}`);
  const versionKey = (scope: string) => `${keyPrefix}${scope}:ver`;
  const pageKey = (key: PageKey) => {
    const digest = createHash('sha256')
      .update(
        JSON.stringify([
          key.filter.source,
          key.filter.type,
          key.filter.from,
          key.filter.to,
          key.limit,
          key.cursor,
          key.caller,
        ]),
      )
      .digest('base64url')
      .slice(0, 22);
    return `${keyPrefix}${scopeOf(key)}:page:${digest}`;
  };
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most values pass without being measured.
  const fits = (value: string) =>
    value.length * 3 <= config.valueMaxBytes ||
    (value.length <= config.valueMaxBytes && Buffer.byteLength(value) <= config.valueMaxBytes);
  const versionTtlMs = Math.max(config.listTtlSeconds * 1000 * 10, 86_400_000);

  // Invalidations that could not reach Redis, retried until done or moot (their entries expired by then).
  const pending = new Map<string, number>();
  const invalidationTtlMs = Math.max(config.negativeTtlSeconds, config.listTtlSeconds) * 1000;
  // Outlives any read that can still be running when the write commits (their absence would come after it).
  const writtenTtlSeconds = config.negativeTtlSeconds * 2 + 10;
  // A standalone Redis (as deployed) takes a write's markers and version bumps as one script call: ioredis's cost
  // is per command (a Command, a promise and a commandTimeout timer each), and a 100-record POST sent 102 SETs,
  // 13 % of its CPU in npm run bench:profile -- post-batch-100. In a cluster the record keys fall on many slots,
  // which one script may not touch, so there each key is its own SET, still one auto-pipelined write per node.
  const marker = redis.isCluster ? undefined : defineMarkWritten(redis);
  const applyInvalidation = async (key: string): Promise<void> => {
    if (key.endsWith(':ver')) {
      // A fresh token, not INCR + PEXPIRE: one command, and any change is all a reader compares.
      await redis.set(key, randomUUID(), 'PX', versionTtlMs);
    } else {
      await redis.set(key, WRITTEN, 'EX', writtenTtlSeconds);
    }
  };
  const retryTimer = setInterval(async () => {
    if (pending.size === 0) return;
    const now = Date.now();
    for (const [key, since] of pending) {
      if (now - since > invalidationTtlMs) {
        pending.delete(key);
        continue;
      }
      const done = await guarded('invalidate', async () => {
        await applyInvalidation(key);
        return true;
      });
      if (done === true) pending.delete(key);
    }
  }, RETRY_INVALIDATIONS_MS);
  retryTimer.unref();

  return {
    async getRecord(id): Promise<CacheLookup<RecordDocument>> {
      const value = await guarded('GET', () => redis.get(recordKey(id)));
      if (value === SKIPPED || value === null || value === WRITTEN) {
        misses++;
        return { kind: value === WRITTEN ? 'written' : 'miss' };
      }
      if (value === ABSENT) {
        hits++;
        return { kind: 'absent' };
      }
      // Stored as the ETag, the source and a newline, then the body: a hit goes to the wire without a parse,
      // stringify or hash. (ETags hold no `{`, sources no newline, and JSON text no raw newline.)
      const source = value.indexOf('{');
      const body = value.indexOf('\n', source);
      if (source < 0 || body < 0) {
        misses++; // written by a release that stored no source: read it again from the store
        return { kind: 'miss' };
      }
      hits++;
      return {
        kind: 'hit',
        value: { etag: value.slice(0, source), source: value.slice(source + 1, body), json: value.slice(body + 1) },
      };
    },

    async putRecord(id, document) {
      const value = `${document.etag}{${document.source}\n${document.json}`;
      if (!fits(value)) return;
      await guarded('SET', () => redis.set(recordKey(id), value, 'EX', config.recordTtlSeconds));
    },

    async putAbsent(id) {
      // NX: never overwrite a record that a concurrent reader has just cached.
      await guarded('SET', () => redis.set(recordKey(id), ABSENT, 'EX', config.negativeTtlSeconds, 'NX'));
    },

    async getPage(key): Promise<PageLookup> {
      const values = await guarded('MGET', () => redis.mget(versionKey(scopeOf(key)), pageKey(key)));
      if (values === SKIPPED) {
        misses++;
        return { page: undefined, token: undefined };
      }
      const [version, stored] = values;
      const token = version ?? '0';
      // token \n next cursor ('' on the last page) \n body; none of the three can hold a raw newline.
      const first = stored?.indexOf('\n') ?? -1;
      const second = first < 0 ? -1 : (stored?.indexOf('\n', first + 1) ?? -1);
      if (stored && second > 0 && stored.slice(0, first) === token) {
        hits++;
        const cursor = stored.slice(first + 1, second);
        return { page: { nextCursor: cursor === '' ? null : cursor, json: stored.slice(second + 1) }, token };
      }
      misses++;
      return { page: undefined, token };
    },

    async putPage(key, token, page) {
      const value = `${token}\n${page.nextCursor ?? ''}\n${page.json}`;
      if (!fits(value)) return;
      await guarded('SET', () => redis.set(pageKey(key), value, 'PX', config.listTtlSeconds * 1000));
    },

    async recordsWritten(records) {
      const keys = new Set<string>([versionKey('{all}')]);
      for (const record of records) {
        keys.add(recordKey(record.id));
        keys.add(versionKey(`{src:${record.source}}`));
      }
      // One guarded call for the whole batch: auto-pipelining sends the SETs in one write (one per node in a
      // cluster), and one breaker decision and one span cover them.
      const done = await guarded('invalidate', async () => {
        if (marker === undefined) await Promise.all([...keys].map(applyInvalidation));
        else {
          const records = [...keys].filter((key) => !key.endsWith(':ver'));
          const versions = [...keys].filter((key) => key.endsWith(':ver'));
          await marker(records, versions, WRITTEN, writtenTtlSeconds, randomUUID(), versionTtlMs);
        }
        return true;
      });
      if (done !== true) {
        const now = Date.now();
        for (const key of keys) pending.set(key, now);
      }
    },

    stats: () => ({
      hits,
      misses,
      errorsOrSkips,
      connected: redis.status === 'ready',
      pendingInvalidations: pending.size,
      breaker: breaker.state(),
    }),
    close: () => clearInterval(retryTimer),
  };
}
