import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '#lib/config';
import type { Logger } from '#lib/observability';

export type RedisClient = Redis | Cluster;

/**
 * An ioredis client (standalone, or Redis Cluster as ElastiCache cluster mode runs it) tuned so that a Redis
 * outage costs each request at most `commandTimeoutMs`: no offline queue (commands fail at once while
 * disconnected), no per-command retries, and reconnection in the background. AUTH and TLS apply to every node of a
 * cluster alike.
 */
export function createRedisClient(config: RedisConfig, logger: Logger): RedisClient {
  const nodeOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    enableReadyCheck: true,
    ...(config.tls && { tls: {} }),
    // In a cluster these reach every node through `redisOptions`, the nodes found by discovery included.
    ...(config.username !== undefined && { username: config.username }),
    ...(config.password !== undefined && { password: config.password }),
  } satisfies RedisOptions;
  const options = {
    ...nodeOptions,
    enableOfflineQueue: false,
    // Commands issued in one tick share one write (and, in a cluster, one per node): a cached GET or a write's
    // invalidations no longer cost a socket write each.
    enableAutoPipelining: true,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2_000),
  };
  const client: RedisClient =
    config.clusterNodes.length > 0
      ? new Cluster(
          config.clusterNodes.map((node) => {
            const [host = '', port = '6379'] = node.split(':');
            return { host, port: Number(port) };
          }),
          {
            lazyConnect: true,
            enableOfflineQueue: false,
            enableAutoPipelining: true,
            redisOptions: nodeOptions,
            clusterRetryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2_000),
            // A dead master's connection is dropped from the pool and, with no offline queue, its slots then fail
            // at once without ever reaching a node that would answer MOVED (redis/ioredis#587; upstream's answer is
            // the per-node `clusterNodeRetryStrategy` of #2096). A periodic CLUSTER SLOTS, one cheap command a
            // second per pod, is meant to find the promoted replica; the failover fault test (f2, skipped) shows
            // that this alone does not bring the cache back yet.
            slotsRefreshInterval: 1_000,
            // ElastiCache's TLS certificates name the configuration endpoint, not the node IPs it returns.
            ...(config.tls && { dnsLookup: (address, callback) => callback(null, address) }),
          },
        )
      : new Redis(config.url ?? 'redis://127.0.0.1:6379', options);
  let reported = false;
  client.on('error', (error: unknown) => {
    // ioredis emits an error per reconnection attempt; one line per outage is enough.
    if (!reported) logger.warn({ err: error }, 'redis unavailable; serving from PostgreSQL');
    reported = true;
  });
  client.on('ready', () => {
    if (reported) logger.info('redis available again');
    reported = false;
  });
  // Connection failures are reported through 'error'; the first connect must not fail the start.
  client.connect().catch(() => undefined);
  return client;
}
