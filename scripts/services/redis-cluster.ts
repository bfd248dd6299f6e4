/**
 * A Redis Cluster of three masters and three replicas from Debian's `redis-server` (`--cluster-enabled yes`),
 * formed with `redis-cli --cluster create … --cluster-replicas 1`, on 127.0.0.1:SERVICES_REDIS_CLUSTER_PORT and the
 * five ports after it (26400–26405), each node daemonized with its config, pid file, log and nodes.conf in
 * `.services/redis-cluster/<port>`. Every node requires a password (`requirepass`, and `masterauth` for its
 * replica), so the tests exercise AUTH in cluster mode as clients of a managed cluster would. No persistence: a
 * cache. `cluster-node-timeout` is short (1 s) so that a killed master fails over within seconds in
 * test/fault/redis-cluster.test.ts. `up` returns only once every replica has finished its first sync: a replica that
 * never synced refuses to take over ("Disconnected from master for longer than allowed"), and a master killed
 * before then leaves its slots down for good. Started only when named (`npm run services:up -- redis-cluster`).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, aptInstall, hasCommand, portOpen, terminate, waitFor } from '../processes.ts';
import { envPort, livePid, log, runSync as run, SERVICES_DIR, type Service, type Settings, tail } from './service.ts';

const BASE_PORT = envPort('SERVICES_REDIS_CLUSTER_PORT', 26400);
/** Three masters, each with one replica. */
export const REDIS_CLUSTER_PORTS = Array.from({ length: 6 }, (_, i) => BASE_PORT + i);
/** A fixed test password (loopback only): what matters is that every client must send it. */
export const REDIS_CLUSTER_PASSWORD = 'cluster-test-password';
const DIR = join(SERVICES_DIR, 'redis-cluster');
const nodeDir = (port: number) => join(DIR, String(port));
const pidFile = (port: number) => join(nodeDir(port), 'redis.pid');
const logFile = (port: number) => join(nodeDir(port), 'redis.log');
const confFile = (port: number) => join(nodeDir(port), 'redis.conf');

const quote = (path: string) => `"${path.replace(/(["\\])/g, '\\$1')}"`;

function ensureInstalled(): void {
  if (hasCommand('redis-server') && hasCommand('redis-cli')) return;
  aptInstall(['redis-server'], 'Redis (redis-server)');
  if (!hasCommand('redis-server')) throw new Error('installing redis-server did not provide the redis-server command');
}

function writeConfig(port: number): void {
  const dir = nodeDir(port);
  // A node that is started again must not remember a cluster it was part of: nodes.conf goes with it.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    confFile(port),
    [
      '# Written by scripts/services/redis-cluster.ts on every start; edit that file, not this one.',
      'bind 127.0.0.1',
      'protected-mode yes',
      `port ${port}`,
      'daemonize yes',
      `pidfile ${quote(pidFile(port))}`,
      `logfile ${quote(logFile(port))}`,
      `dir ${quote(dir)}`,
      'cluster-enabled yes',
      'cluster-config-file nodes.conf',
      'cluster-node-timeout 1000',
      `requirepass ${REDIS_CLUSTER_PASSWORD}`,
      `masterauth ${REDIS_CLUSTER_PASSWORD}`,
      // Redis 7 holds a diskless full sync back 5 s for more replicas to join it: each master has one, so start at once.
      'repl-diskless-sync-delay 0',
      'appendonly no',
      'save ""',
      '',
    ].join('\n'),
  );
}

/** The pid of the node on `port` (from its pid file), if it is alive. */
export const nodePid = (port: number): number | undefined => livePid(pidFile(port), 'redis-server');

const cli = (port: number, ...args: string[]) =>
  run(
    'redis-cli',
    ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', '-a', REDIS_CLUSTER_PASSWORD, ...args],
    {
      allowFail: true,
    },
  ).trim();

/** Whether the node on `port` sees the whole cluster as healthy (every slot served). */
export const clusterOk = (port: number): boolean => /cluster_state:ok/.test(cli(port, 'cluster', 'info'));

/**
 * Whether every replica's link to its master is up (its first sync done), so that any master can fail over. A
 * replica in the middle of a sync or never synced is not counted as one.
 */
export function replicasInSync(): boolean {
  const infos = REDIS_CLUSTER_PORTS.map((port) => cli(port, 'info', 'replication'));
  const replicas = infos.filter((info) => /^role:slave/m.test(info));
  return (
    replicas.length === REDIS_CLUSTER_PORTS.length / 2 && replicas.every((info) => /^master_link_status:up/m.test(info))
  );
}

/** The ports of the replicas of the master on `port`, from a live node's view of the cluster. */
export function replicaPorts(port: number): number[] {
  const live = REDIS_CLUSTER_PORTS.find((p) => nodePid(p) !== undefined);
  if (live === undefined) return [];
  // <id> <ip:port@cport> <flags> <master id or -> …
  const nodes = cli(live, 'cluster', 'nodes')
    .split('\n')
    .map((line) => line.split(' '))
    .map(([id, address, flags, master]) => ({ id, port: Number(/:(\d+)@/.exec(address ?? '')?.[1]), flags, master }));
  const id = nodes.find((node) => node.port === port)?.id;
  if (id === undefined) return [];
  return nodes.filter((node) => node.master === id && /slave/.test(node.flags ?? '')).map((node) => node.port);
}

/** Starts the node on `port` again with the config it had (after a test killed it); it rejoins as a replica. */
export async function restartNode(port: number): Promise<void> {
  if (nodePid(port) !== undefined) return;
  run('redis-server', [confFile(port)], { cwd: nodeDir(port) });
  await waitFor(`Redis node ${port} to answer PING`, 20_000, () => (cli(port, 'ping') === 'PONG' ? true : undefined));
}

const settings = (): Settings => ({
  REDIS_CLUSTER_NODES: REDIS_CLUSTER_PORTS.map((port) => `127.0.0.1:${port}`).join(','),
  REDIS_PASSWORD: REDIS_CLUSTER_PASSWORD,
});

async function up(): Promise<Settings> {
  ensureInstalled();
  const running = REDIS_CLUSTER_PORTS.filter((port) => nodePid(port) !== undefined);
  if (running.length === REDIS_CLUSTER_PORTS.length && REDIS_CLUSTER_PORTS.every(clusterOk)) {
    log(`Redis Cluster already running on 127.0.0.1:${BASE_PORT}–${BASE_PORT + 5}`);
    // A node started again after a kill rejoins as a replica and syncs first.
    await waitFor('every replica to be in sync with its master', 30_000, () => (replicasInSync() ? true : undefined));
    return settings();
  }
  if (running.length > 0) await down();
  for (const port of REDIS_CLUSTER_PORTS) {
    if (await portOpen(port)) {
      throw new Error(`127.0.0.1:${port} is taken by another process; set SERVICES_REDIS_CLUSTER_PORT to a free range`);
    }
  }
  log(`starting a Redis Cluster (3 masters, 3 replicas) on 127.0.0.1:${BASE_PORT}–${BASE_PORT + 5}`);
  for (const port of REDIS_CLUSTER_PORTS) {
    writeConfig(port);
    run('redis-server', [confFile(port)], { cwd: nodeDir(port) });
  }
  try {
    for (const port of REDIS_CLUSTER_PORTS) {
      await waitFor(`Redis node ${port} to answer PING`, 20_000, () =>
        cli(port, 'ping') === 'PONG' ? true : undefined,
      );
    }
    const created = run(
      'redis-cli',
      [
        '--no-auth-warning',
        '-a',
        REDIS_CLUSTER_PASSWORD,
        '--cluster',
        'create',
        ...REDIS_CLUSTER_PORTS.map((port) => `127.0.0.1:${port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { allowFail: true },
    );
    if (!created.includes('All 16384 slots covered')) throw new Error(`redis-cli --cluster create:\n${created}`);
    await waitFor('every node to report cluster_state:ok', 30_000, () =>
      REDIS_CLUSTER_PORTS.every(clusterOk) ? true : undefined,
    );
    await waitFor('every replica to be in sync with its master', 30_000, () => (replicasInSync() ? true : undefined));
  } catch (error) {
    const logs = REDIS_CLUSTER_PORTS.map((port) => `${logFile(port)}:\n${tail(logFile(port), 10)}`).join('\n');
    throw new Error(`${(error as Error).message}\n${logs}`);
  }
  return settings();
}

async function down(): Promise<void> {
  const pids = REDIS_CLUSTER_PORTS.flatMap((port) => {
    const pid = nodePid(port);
    if (pid === undefined) return [];
    cli(port, 'shutdown', 'nosave');
    return [pid];
  });
  if (pids.length === 0) {
    log('Redis Cluster was not running');
    return;
  }
  try {
    await waitFor('the Redis Cluster nodes to exit', 10_000, () => (pids.some(alive) ? undefined : true));
  } catch {
    await terminate(pids, 'Redis Cluster', 5_000);
  }
  for (const port of REDIS_CLUSTER_PORTS) if (existsSync(pidFile(port))) rmSync(pidFile(port), { force: true });
  log('Redis Cluster stopped');
}

/** The ports of the current masters, from a live node's view of the cluster. */
export function masterPorts(): number[] {
  const live = REDIS_CLUSTER_PORTS.find((port) => nodePid(port) !== undefined);
  if (live === undefined) return [];
  return cli(live, 'cluster', 'nodes')
    .split('\n')
    .filter((line) => / master /.test(line) && !/fail/.test(line))
    .map((line) => Number(/:(\d+)@/.exec(line)?.[1]))
    .filter((port) => Number.isInteger(port));
}

export const redisCluster: Service = {
  name: 'redis-cluster',
  up,
  down,
  running: async () => REDIS_CLUSTER_PORTS.every((port) => nodePid(port) !== undefined) && clusterOk(BASE_PORT),
  pids: () => REDIS_CLUSTER_PORTS.map(nodePid).filter((pid) => pid !== undefined),
};
