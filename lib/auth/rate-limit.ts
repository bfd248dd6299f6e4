/**
 * Requests per caller, counted across pods in Redis (rate-limiter-flexible), with a burst allowance: a caller may
 * send `perSecond` requests every second, and up to `burst` in one second once per burst window. While Redis is
 * unreachable each process counts on its own (the library's insurance limiter), so the limit still holds per pod.
 *
 * A process takes a busy caller's points from the shared count in leases rather than one by one, so that caller
 * costs one Redis round trip per lease instead of one per request (docs/access-control.md). A lease is sized to
 * about LEASE_SPAN_MS of this process's traffic from that caller, and never more than 1/MAX_LEASE_DIVISOR of the
 * quota; points leased but unused when the window ends are the count's only error, so a caller at its limit may be
 * refused that much early, never admitted beyond it. With a limit under 2 × MAX_LEASE_DIVISOR per second a lease is
 * always one point: small limits count exactly as before.
 */
import { LRUCache } from 'lru-cache';
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '#lib/errors';

export interface RateLimitOptions {
  readonly perSecond: number;
  /** Requests allowed in one second at most (≥ perSecond); the excess over perSecond renews every burst window. */
  readonly burst: number;
  readonly burstWindowSeconds: number;
  /** ioredis (standalone or cluster); without it the limit is per process. */
  readonly redis?: unknown;
  readonly keyPrefix: string;
}

export interface RateLimiter {
  /** Counts one request of `caller`: its `RateLimit` headers, or a 429 `rate-limited` AppError carrying them. */
  take(caller: string): Promise<Readonly<Record<string, string>>>;
  /** Requests refused so far. */
  limited(): number;
}

// The IETF fields (draft-ietf-httpapi-ratelimit-headers): one named policy, its quota and window in seconds.
const POLICY = 'per-caller';
const LEASE_SPAN_MS = 50;
const MAX_LEASE_DIVISOR = 20;
// Callers with a lease held at once; one evicted only costs its next request a round trip.
const MAX_LEASES = 10_000;

export interface Lease {
  /** Points leased and not used yet. */
  left: number;
  readonly size: number;
  readonly takenAt: number;
  /** When the shared count's window ends: the lease is worth nothing after it. */
  readonly resetAt: number;
  /** What the shared count had left when the lease was taken. */
  readonly sharedLeft: number;
}

/** The next lease for a caller whose last one is `last`: what it would use in LEASE_SPAN_MS at its recent rate. */
export function nextLeaseSize(last: Lease | undefined, now: number, maxSize: number): number {
  if (last === undefined || maxSize <= 1) return 1;
  const used = last.size - last.left;
  const perMs = used / Math.max(1, now - last.takenAt);
  return Math.min(maxSize, Math.max(1, Math.round(perMs * LEASE_SPAN_MS)));
}

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const { perSecond, burst, burstWindowSeconds, keyPrefix } = options;
  let limited = 0;
  const limiter = (name: string, points: number, duration: number) => {
    const memory = new RateLimiterMemory({ keyPrefix: `${keyPrefix}${name}`, points, duration });
    if (options.redis === undefined) return memory;
    return new RateLimiterRedis({
      storeClient: options.redis,
      keyPrefix: `${keyPrefix}${name}`,
      points,
      duration,
      // No waiting on a Redis that is down or connecting: the process's own count answers at once.
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
    });
  };
  const steady = limiter('rl:', perSecond, 1);
  const limiters =
    burst > perSecond ? new BurstyRateLimiter(steady, limiter('rlb:', burst - perSecond, burstWindowSeconds)) : steady;
  const policy = `"${POLICY}";q=${perSecond};w=1`;
  const fields = (remaining: number, msBeforeNext: number) => ({
    'ratelimit-policy': policy,
    ratelimit: `"${POLICY}";r=${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(msBeforeNext / 1000))}`,
  });
  const maxLease = Math.max(1, Math.floor(perSecond / MAX_LEASE_DIVISOR));
  const leases = new LRUCache<string, Lease>({ max: MAX_LEASES });

  // One refill per caller at a time: requests that arrive while it is in flight wait for the lease it brings, so
  // a process holds at most one lease of a caller (what bounds the count's error), never one per waiting request.
  const refills = new Map<string, Promise<unknown>>();

  const refill = async (caller: string, last: Lease | undefined, now: number) => {
    const size = nextLeaseSize(last, now, maxLease);
    try {
      const result = await limiters.consume(caller, size);
      const at = Date.now();
      const taken = {
        left: size - 1,
        size,
        takenAt: at,
        resetAt: at + result.msBeforeNext,
        sharedLeft: Math.max(0, result.remainingPoints),
      };
      if (maxLease > 1) leases.set(caller, taken);
      return fields(taken.sharedLeft + taken.left, result.msBeforeNext);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      // Near the limit leases shrink back to single points, so the count is exact again where it matters.
      leases.delete(caller);
      limited++;
      const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new AppError('rate-limited', `Too many requests from this caller; retry in ${retryAfterSeconds} s.`, {
        retryAfterSeconds,
        headers: fields(0, rejection.msBeforeNext),
      });
    }
  };

  return {
    async take(caller) {
      // Single points (a limit under 2 × MAX_LEASE_DIVISOR): nothing to share, every request counts on its own.
      if (maxLease === 1) return refill(caller, undefined, Date.now());
      for (;;) {
        const now = Date.now();
        const lease = leases.get(caller);
        if (lease !== undefined && lease.left > 0 && now < lease.resetAt) {
          lease.left--;
          return fields(lease.sharedLeft + lease.left, lease.resetAt - now);
        }
        const pending = refills.get(caller);
        if (pending === undefined) {
          const taken = refill(caller, lease, now);
          const settled = taken.catch(() => undefined);
          refills.set(caller, settled);
          void settled.then(() => refills.delete(caller));
          return taken;
        }
        await pending;
      }
    },
    limited: () => limited,
  };
}
