import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '#lib/config';
import type { Logger } from '#lib/observability';

export type RedisClient = Redis | Cluster;

/**
 * An ioredis client (standalone, or Redis Cluster as ElastiCache cluster mode runs it) tuned so that a Redis
 * outage costs each request at most `commandTimeoutMs`: no offline queue (commands fail at once while
 * disconnected), no per-command retries, and reconnection in the background. One exception, in a cluster: while a
 * master fails over, a command for its slots is retried by ioredis for up to about 2 s (measured by the fault
 * test f2) before it succeeds or fails. AUTH and TLS apply to every node of a cluster alike.
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
            // Neither `clusterNodeRetryStrategy` nor `slotsRefreshInterval`, on purpose. The first (redis/ioredis#2096)
            // fixes redis/ioredis#587: a node that comes back at its address with no slot moved is never reconnected.
            // That is a restarted replica, and with scaleReads 'master' we never read from replicas. When a master
            // dies, its slots do move. A command that finds its connection closed is retried every
            // `retryDelayOnFailover` (100 ms), each time after a fresh CLUSTER SLOTS, and the other masters answer
            // MOVED to the promoted replica. The cache serves those slots again as soon as the promotion is done.
            // The failover fault test (f2) measured this within its 500 ms sampling, with and without a CLUSTER
            // SLOTS a second. That periodic refresh (ioredis 6 runs none by default) would only cost a command a
            // second per pod. The price of those retries: until the promotion, such a command waits up to
            // maxRedirections × 100 ms (about 2 s, measured), longer than `commandTimeout`.
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
