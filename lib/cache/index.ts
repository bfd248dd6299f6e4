export { type BreakerState, type CircuitBreaker, createCircuitBreaker } from './circuit-breaker.ts';
export { type CacheStats, createRecordCache, type RecordCacheOptions, type RedisRecordCache } from './record-cache.ts';
export { createRedisClient, type RedisClient } from './redis-client.ts';
