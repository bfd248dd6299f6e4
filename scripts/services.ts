/**
 * `npm run services:up` / `services:down` / `services:status`: the backing services the tests and benchmarks
 * use, started from this machine's own registries on loopback ports of their own (modules in scripts/services/):
 * - PostgreSQL from Debian's package, 127.0.0.1:25432 (SERVICES_PG_PORT);
 * - Redis from Debian's `redis-server`, 127.0.0.1:26379 (SERVICES_REDIS_PORT);
 * - Apache Kafka 4.1 (KRaft, single node) from Maven Central's jars on the machine's Java 17,
 *   127.0.0.1:29092 (SERVICES_KAFKA_PORT), jars cached in `.cache/kafka/lib`;
 * - only when named (`up replica`): a streaming standby of that PostgreSQL, 127.0.0.1:25433
 *   (SERVICES_PG_REPLICA_PORT), for the read-replica tests (DATABASE_READ_URL);
 * - only when named (`up kafka-cluster`): three Kafka brokers, 127.0.0.1:29192–29194 (SERVICES_KAFKA_CLUSTER_PORT;
 *   controllers on the next three ports).
 * - only when named (`up redis-cluster`): a Redis Cluster of three masters and three replicas,
 *   127.0.0.1:26400–26405 (SERVICES_REDIS_CLUSTER_PORT), with a password (REDIS_PASSWORD in the exports).
 * - an S3-compatible server (moto's server mode from PyPI, in a venv cached in `.cache/s3-venv`),
 *   127.0.0.1:29500 (SERVICES_S3_PORT), with the bucket the archive tests use.
 * The ports sit below Linux's ephemeral range (32768–60999): a port inside it can be taken, while its service
 * is stopped by a fault test, by any outgoing connection's local port (or a client's self-connect), and the
 * restart then fails with "address already in use" — which happened to Kafka at 59192.
 * Missing Debian packages are installed with apt-get when we are root. State and logs live in `.services/`.
 *
 * Idempotent: `up` leaves running services alone and waits until each really serves; `down` stops what `up`
 * started here and waits until its processes are gone; `status` prints one line per service and exits 0 only if
 * all of them run. Each command takes an optional list of services (default: all), e.g.
 * `npm run services:down -- redis kafka`.
 *
 * `up` prints the settings as `export NAME=value` lines on stdout (logs go to stderr), so
 * `eval "$(npm run -s services:up)"` configures a shell.
 */

import { helpFromHeader } from './help.ts';
import { kafka, kafkaCluster } from './services/kafka.ts';
import { postgres } from './services/postgres.ts';
import { postgresReplica } from './services/postgres-replica.ts';
import { redis } from './services/redis.ts';
import { redisCluster } from './services/redis-cluster.ts';
import { s3 } from './services/s3.ts';
import { log, type Service, type Settings } from './services/service.ts';

helpFromHeader(import.meta.url);

const ALL: readonly Service[] = [postgres, redis, kafka, s3];
/**
 * Started only when named: three JVMs, a standby, or six Redis nodes are too much to start for every test run
 * (their tests, e.g. test/fault/kafka-cluster.test.ts and redis-cluster.test.ts, start and stop them).
 */
const ON_REQUEST: readonly Service[] = [kafkaCluster, postgresReplica, redisCluster];
const ALIASES: Record<string, string> = { pg: 'postgres', postgresql: 'postgres' };

function select(names: string[]): readonly Service[] {
  if (names.length === 0) return ALL;
  const known = [...ALL, ...ON_REQUEST];
  const wanted = new Set(names.map((n) => ALIASES[n.toLowerCase()] ?? n.toLowerCase()));
  const unknown = [...wanted].filter((n) => !known.some((s) => s.name === n));
  if (unknown.length > 0)
    throw new Error(`unknown service ${unknown.join(', ')}; use ${known.map((s) => s.name).join(', ')}`);
  return known.filter((s) => wanted.has(s.name));
}

/** Runs `task` for every service (concurrently where they wait) and fails, after all have finished, if any did. */
async function each<T>(services: readonly Service[], task: (s: Service) => Promise<T>): Promise<T[]> {
  const results = await Promise.allSettled(services.map((s) => task(s)));
  const failures = results.flatMap((result, i) =>
    result.status === 'rejected'
      ? [`${services[i]?.name}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`]
      : [],
  );
  if (failures.length > 0) throw new Error(failures.join('\n'));
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

// kafkajs 2.2.4 sets a negative timer under Node 24 (tulios/kafkajs#1751): harmless, and noise in every log.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'TimeoutNegativeWarning') log(`warning: ${warning.message}`);
});

const [command = 'up', ...names] = process.argv.slice(2);
try {
  const services = select(names);
  if (command === 'up') {
    const started = Date.now();
    const settings: Settings[] = await each(services, (s) => s.up());
    for (const [name, value] of settings.flatMap((s) => Object.entries(s))) {
      process.stdout.write(`export ${name}=${value}\n`);
    }
    log(`up: ${services.map((s) => s.name).join(', ')} serving (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } else if (command === 'down') {
    await each(services, (s) => s.down());
  } else if (command === 'status') {
    const states = await each(services, (s) => s.running());
    services.forEach((s, i) => {
      process.stdout.write(`${s.name} ${states[i] ? 'running' : 'stopped'}\n`);
    });
    process.exitCode = states.every(Boolean) ? 0 : 1;
  } else {
    throw new Error(`unknown command ${command}; use up, down or status [postgres|redis|kafka|s3 …]`);
  }
} catch (error) {
  log(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
