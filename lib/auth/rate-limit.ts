/**
 * Requests per caller, counted across pods in Redis (rate-limiter-flexible), with a burst allowance: a caller may
 * send `perSecond` requests every second, and up to `burst` in one second once per burst window. While Redis is
 * unreachable each process counts on its own (the library's insurance limiter), so the limit still holds per pod.
 */
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
  const fields = (result: RateLimiterRes) => ({
    'ratelimit-policy': policy,
    ratelimit: `"${POLICY}";r=${Math.max(0, result.remainingPoints)};t=${Math.max(0, Math.ceil(result.msBeforeNext / 1000))}`,
  });

  return {
    async take(caller) {
      try {
        return fields(await limiters.consume(caller));
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        limited++;
        const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        throw new AppError('rate-limited', `Too many requests from this caller; retry in ${retryAfterSeconds} s.`, {
          retryAfterSeconds,
          headers: fields(rejection),
        });
      }
    },
    limited: () => limited,
  };
}
