export { type BreakerState, type CircuitBreaker, createCircuitBreaker } from './circuit-breaker.ts';
export { redisPages, uncachedPages, withRedisRecords, withResponseTier } from './read-chain.ts';
export {
  type CacheLookup,
  type CacheStats,
  createRecordCache,
  type PageLookup,
  type RecordCache,
  type RecordCacheOptions,
  type RedisRecordCache,
} from './record-cache.ts';
export { createRedisClient, type RedisClient } from './redis-client.ts';
export { createResponseTier, type ResponseTier } from './response-tier.ts';
export { createSingleFlight, type SingleFlight } from './single-flight.ts';
