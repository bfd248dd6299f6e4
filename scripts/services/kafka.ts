/**
 * Apache Kafka 4.1 in KRaft mode, run from its Maven Central jars (see kafka-jars.ts) on the machine's Java 17:
 * storage formatted once, then `kafka.Kafka` detached with its pid file, config and logs. Every node is both
 * broker and controller. Ready means kafkajs's describeCluster lists every node (registered and unfenced), which
 * costs no JVM start.
 *
 * - `kafka`: one node in `.services/kafka`; broker on 127.0.0.1:SERVICES_KAFKA_PORT (29092), controller on
 *   SERVICES_KAFKA_CONTROLLER_PORT (29093). What the tests and benches use.
 * - `kafka-cluster`: three nodes (a controller quorum of three) in `.services/kafka-cluster/node-<id>`; brokers on
 *   SERVICES_KAFKA_CLUSTER_PORT (29192) + 0, 1, 2, controllers on + 3, 4, 5. For the durability test that loses
 *   a broker under load (test/fault/kafka-cluster.test.ts); started only when named.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { alive, aptInstall, cmdline, hasCommand, portOpen, terminate, waitFor } from '../processes.ts';
import { kafkaJars } from './kafka-jars.ts';
import {
  envPort,
  findProcesses,
  livePid,
  log,
  runSync as run,
  SERVICES_DIR,
  type Service,
  type Settings,
  tail,
} from './service.ts';

/** Modest: the machine has 2 cores and shares them with the tests. */
const HEAP = ['-Xms256m', '-Xmx512m'];
/** Three brokers share the machine: smaller heaps (a test topic needs little). */
const CLUSTER_HEAP = ['-Xms128m', '-Xmx384m'];
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 30_000;

interface KafkaNode {
  readonly id: number;
  readonly port: number;
  readonly controllerPort: number;
  readonly dir: string;
}

const files = (dir: string) => ({
  logDirs: join(dir, 'data'),
  config: join(dir, 'server.properties'),
  log4j: join(dir, 'log4j2.xml'),
  pidfile: join(dir, 'kafka.pid'),
  outfile: join(dir, 'kafka.log'),
});

function ensureJava(): void {
  if (!hasCommand('java')) aptInstall(['openjdk-17-jre-headless'], 'Java 17');
  const version = /version "(\d+)/.exec(run('java', ['-version']))?.[1];
  if (Number(version) < 17) throw new Error(`Kafka 4 needs Java 17 or newer; \`java -version\` says ${version}`);
}

function writeConfig(node: KafkaNode, nodes: readonly KafkaNode[]): void {
  const { logDirs, config, log4j } = files(node.dir);
  mkdirSync(logDirs, { recursive: true });
  // Internal topics replicated as the cluster allows: 3 (min ISR 2) on three nodes, 1 on one.
  const replication = Math.min(3, nodes.length);
  const minIsr = nodes.length >= 3 ? 2 : 1;
  const properties = {
    'process.roles': 'broker,controller',
    'node.id': node.id,
    'controller.quorum.voters': nodes.map((n) => `${n.id}@127.0.0.1:${n.controllerPort}`).join(','),
    listeners: `PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${node.port}`,
    'inter.broker.listener.name': 'PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': logDirs,
    'num.partitions': 3,
    'auto.create.topics.enable': false,
    'offsets.topic.replication.factor': replication,
    'transaction.state.log.replication.factor': replication,
    'transaction.state.log.min.isr': minIsr,
    // 50 partitions each by default: created on first use, a noticeable pause on 2 cores.
    'offsets.topic.num.partitions': 5,
    'transaction.state.log.num.partitions': 5,
    'share.coordinator.state.topic.replication.factor': replication,
    'share.coordinator.state.topic.min.isr': minIsr,
    'group.initial.rebalance.delay.ms': 0,
    // Fewer threads than the defaults (3 network, 8 I/O): test brokers on 2 cores.
    'num.network.threads': 2,
    'num.io.threads': 4,
  };
  writeFileSync(
    config,
    [
      '# Written by scripts/services/kafka.ts on every start; edit that file, not this one.',
      ...Object.entries(properties).map(([key, value]) => `${key}=${value}`),
      '',
    ].join('\n'),
  );
  writeFileSync(
    log4j,
    `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/services/kafka.ts: warnings and errors only, to stdout (which goes to kafka.log). -->
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka.server.KafkaServer" level="INFO"/>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Root level="WARN"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
`,
  );
}

const jvm = (dir: string, lib: string, heap: readonly string[]) => [
  ...heap,
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-Djava.awt.headless=true',
  `-Dlog4j2.configurationFile=${files(dir).log4j}`,
  `-Dkafka.logs.dir=${dir}`,
  '-cp',
  `${lib}/*`,
];

/** Kafka's cluster id format: 16 random bytes, URL-safe base64 without padding, not starting with '-'. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function formatStorage(lib: string, node: KafkaNode, clusterId: () => string): void {
  const { logDirs, config } = files(node.dir);
  if (existsSync(join(logDirs, 'meta.properties'))) return;
  const id = clusterId();
  log(`formatting Kafka storage in ${logDirs} (cluster ${id})`);
  const result = spawnSync(
    'java',
    [
      ...jvm(node.dir, lib, ['-Xmx256m']),
      'kafka.tools.StorageTool',
      'format',
      '-t',
      id,
      '-c',
      config,
      '--ignore-formatted',
    ],
    { cwd: node.dir, encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`Kafka StorageTool format failed:\n${result.stdout}${result.stderr}`);
}

/** One node's Kafka processes: started with its server.properties (the pid file names the main one). */
function nodePids(node: KafkaNode): number[] {
  const { config, pidfile } = files(node.dir);
  const pids = new Set(findProcesses(config).filter((pid) => cmdline(pid).includes('kafka.')));
  const fromFile = livePid(pidfile, 'kafka.Kafka');
  if (fromFile !== undefined) pids.add(fromFile);
  return [...pids];
}

/** Whether describeCluster (asked of any reachable node) lists every one of `nodes` on its port. */
async function serving(nodes: readonly KafkaNode[], timeoutMs = 3000): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'services-probe',
    brokers: nodes.map((n) => `127.0.0.1:${n.port}`),
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    const { brokers } = await admin.describeCluster();
    return nodes.every((n) => brokers.some((b) => b.nodeId === n.id && b.port === n.port));
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** A Kafka service of `nodes`; the cluster variant can also stop and start one node (a broker loss). */
export interface KafkaService extends Service {
  /** `host:port,…` of every broker. */
  readonly brokers: string;
  /** The processes of one node, by node id. */
  nodePids(id: number): number[];
  /** Starts one node (after a test stopped it) and waits until the whole cluster serves again. */
  startNode(id: number): Promise<void>;
}

function createKafkaService(options: {
  name: string;
  nodes: readonly KafkaNode[];
  heap: readonly string[];
  settingName: string;
  portHint: string;
  /** Where the shared cluster id is kept for nodes formatted later (a single node formats once, any id). */
  clusterIdFile?: string;
}): KafkaService {
  const { name, nodes, heap, settingName, portHint } = options;
  const brokers = nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  const label = nodes.length === 1 ? 'Kafka' : `Kafka node`;
  const clusterId = () => {
    const file = options.clusterIdFile;
    if (file === undefined) return newClusterId();
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${newClusterId()}\n`);
    }
    return readFileSync(file, 'utf8').trim();
  };
  const pids = () => nodes.flatMap(nodePids);

  async function waitUntilServing(started: ReadonlyArray<{ node: KafkaNode; pid: number }>): Promise<void> {
    const began = Date.now();
    await waitFor(
      `${name} to serve metadata`,
      READY_TIMEOUT_MS,
      async () => {
        for (const { node, pid } of started) {
          if (!alive(pid)) {
            throw new Error(
              `${label} ${node.id} exited during start; ${files(node.dir).outfile}:\n${tail(files(node.dir).outfile)}`,
            );
          }
        }
        return (await serving(nodes)) ? true : undefined;
      },
      500,
    ).catch((error: unknown) => {
      const logs = nodes.map((n) => `${files(n.dir).outfile}:\n${tail(files(n.dir).outfile)}`).join('\n');
      throw error instanceof Error && error.message.startsWith('timed out')
        ? new Error(`${error.message}; ${logs}`)
        : error;
    });
    log(`${name} serving on ${brokers} (${((Date.now() - began) / 1000).toFixed(1)} s after start)`);
  }

  async function start(toStart: readonly KafkaNode[]): Promise<void> {
    for (const node of toStart) {
      for (const port of [node.port, node.controllerPort]) {
        if (await portOpen(port)) {
          throw new Error(`127.0.0.1:${port} is taken by another process; set ${portHint}`);
        }
      }
    }
    ensureJava();
    const { lib, kafka: version } = await kafkaJars();
    const started: Array<{ node: KafkaNode; pid: number }> = [];
    for (const node of toStart) {
      writeConfig(node, nodes);
      formatStorage(lib, node, clusterId);
      log(
        `starting Kafka ${version} (KRaft, broker+controller${nodes.length > 1 ? `, node ${node.id}` : ''}) on 127.0.0.1:${node.port}`,
      );
      const { outfile, pidfile, config } = files(node.dir);
      const out = openSync(outfile, 'a');
      writeSync(out, `\n=== ${new Date().toISOString()} starting Kafka ${version}\n`);
      const child = spawn('java', [...jvm(node.dir, lib, heap), 'kafka.Kafka', config], {
        cwd: node.dir,
        detached: true,
        stdio: ['ignore', out, out],
      });
      closeSync(out);
      const pid = child.pid;
      if (pid === undefined) throw new Error('could not start java');
      child.unref();
      writeFileSync(pidfile, `${pid}\n`);
      started.push({ node, pid });
    }
    await waitUntilServing(started);
  }

  async function up(): Promise<Settings> {
    const settings = { [settingName]: brokers };
    const running = nodes.filter((n) => nodePids(n).length > 0);
    for (const node of running) {
      const { config } = files(node.dir);
      if (!existsSync(config) || !readFileSync(config, 'utf8').includes(`PLAINTEXT://127.0.0.1:${node.port},`)) {
        throw new Error(
          `${name} runs with another port (see ${config}); stop it first: npm run services:down -- ${name}`,
        );
      }
    }
    const stopped = nodes.filter((n) => !running.includes(n));
    if (stopped.length > 0) {
      await start(stopped);
    } else if (await serving(nodes)) {
      log(`${name} already running on ${brokers}`);
    } else {
      log(`${name} is running but not serving yet; waiting`);
      await waitUntilServing([]);
    }
    return settings;
  }

  async function down(): Promise<void> {
    const all = pids();
    if (all.length === 0) {
      log(`${name} was not running`);
    } else {
      await terminate(all, name, STOP_GRACE_MS);
      log(`${name} stopped`);
    }
    for (const node of nodes) rmSync(files(node.dir).pidfile, { force: true });
  }

  const nodeById = (id: number): KafkaNode => {
    const node = nodes.find((n) => n.id === id);
    if (node === undefined) throw new Error(`${name} has no node ${id}`);
    return node;
  };

  return {
    name,
    brokers,
    up,
    down,
    running: async () => nodes.every((n) => nodePids(n).length > 0) && (await serving(nodes)),
    pids,
    nodePids: (id) => nodePids(nodeById(id)),
    startNode: (id) => start([nodeById(id)]),
  };
}

const PORT = envPort('SERVICES_KAFKA_PORT', 29092);
const CLUSTER_PORT = envPort('SERVICES_KAFKA_CLUSTER_PORT', 29192);
const CLUSTER_DIR = join(SERVICES_DIR, 'kafka-cluster');

export const kafka: KafkaService = createKafkaService({
  name: 'kafka',
  nodes: [
    {
      id: 1,
      port: PORT,
      controllerPort: envPort('SERVICES_KAFKA_CONTROLLER_PORT', PORT + 1),
      dir: join(SERVICES_DIR, 'kafka'),
    },
  ],
  heap: HEAP,
  settingName: 'KAFKA_BROKERS',
  portHint: 'SERVICES_KAFKA_PORT (and _CONTROLLER_PORT)',
});

/** Three brokers for the durability test; `KAFKA_CLUSTER_BROKERS` in its settings. */
export const kafkaCluster: KafkaService = createKafkaService({
  name: 'kafka-cluster',
  nodes: [1, 2, 3].map((id) => ({
    id,
    port: CLUSTER_PORT + id - 1,
    controllerPort: CLUSTER_PORT + id + 2,
    dir: join(CLUSTER_DIR, `node-${id}`),
  })),
  heap: CLUSTER_HEAP,
  settingName: 'KAFKA_CLUSTER_BROKERS',
  portHint: 'SERVICES_KAFKA_CLUSTER_PORT (its six ports follow it)',
  clusterIdFile: join(CLUSTER_DIR, 'cluster.id'),
});
