/**
 * The query function's read chains, link by link: the in-process tier, then Redis (with single-flight, so a
 * hot key reaches PostgreSQL once per process), then the store. functions/query/app.ts assembles them.
 */
import type { PageKey, PageSource, RecordSource } from '#lib/records';
import type { RecordCache } from './record-cache.ts';
import type { ResponseTier } from './response-tier.ts';
import { createSingleFlight } from './single-flight.ts';

/** The in-process tier in front of `inner`: a hit costs no I/O at all. */
export function withResponseTier(tier: ResponseTier, inner: RecordSource): RecordSource {
  return {
    async get(id) {
      const held = tier.get(id);
      if (held !== undefined) return held;
      const found = await inner.get(id);
      if (found !== undefined) tier.set(id, found);
      return found;
    },
  };
}

/** Redis cache-aside in front of `inner`, with negative entries and single-flight on misses. */
export function withRedisRecords(cache: RecordCache, inner: RecordSource): RecordSource {
  const flights = createSingleFlight<Awaited<ReturnType<RecordSource['get']>>>();
  return {
    async get(id) {
      const cached = await cache.getRecord(id);
      if (cached.kind === 'hit') return cached.value;
      if (cached.kind === 'absent') return undefined;
      // After a recent write of the id, join only reads that began after it: an older one may have missed the row.
      return flights.run(cached.kind === 'written' ? `written:${id}` : id, async () => {
        const found = await inner.get(id);
        await (found === undefined ? cache.putAbsent(id) : cache.putRecord(id, found));
        return found;
      });
    },
  };
}

/** List pages straight from the store (no cache configured). */
export const uncachedPages: PageSource = { get: (_key, compute) => compute() };

/**
 * List pages cached briefly in Redis under the version of their scope, so a page computed before a write is
 * never served after it; concurrent misses of one page share one store query.
 */
export function redisPages(cache: RecordCache): PageSource {
  const flights = createSingleFlight<Awaited<ReturnType<PageSource['get']>>>();
  return {
    async get(key: PageKey, compute) {
      const cached = await cache.getPage(key);
      if (cached.page !== undefined) return cached.page;
      const { token } = cached;
      return flights.run(JSON.stringify([key, token]), async () => {
        const page = await compute();
        if (token !== undefined) await cache.putPage(key, token, page);
        return page;
      });
    },
  };
}
