/**
 * Apache Kafka 4.1 in KRaft mode, one node that is both broker and controller, run from its Maven Central jars
 * (see kafka-jars.ts) on the machine's Java 17: storage formatted once, then `kafka.Kafka` detached with its pid
 * file, config and logs in `.services/kafka`. Broker on 127.0.0.1:SERVICES_KAFKA_PORT (29092), controller on
 * SERVICES_KAFKA_CONTROLLER_PORT (29093). Ready means kafkajs's describeCluster lists this broker (registered and
 * unfenced), which costs no JVM start.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
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

const PORT = envPort('SERVICES_KAFKA_PORT', 29092);
const CONTROLLER_PORT = envPort('SERVICES_KAFKA_CONTROLLER_PORT', PORT + 1);
const NODE_ID = 1;
const DIR = join(SERVICES_DIR, 'kafka');
const LOG_DIRS = join(DIR, 'data');
const CONFIG = join(DIR, 'server.properties');
const LOG4J_CONFIG = join(DIR, 'log4j2.xml');
const PIDFILE = join(DIR, 'kafka.pid');
const OUTFILE = join(DIR, 'kafka.log');
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 30_000;
/** Modest: the machine has 2 cores and shares them with the tests. */
const HEAP = ['-Xms256m', '-Xmx512m'];

function ensureJava(): void {
  if (!hasCommand('java')) aptInstall(['openjdk-17-jre-headless'], 'Java 17');
  const version = /version "(\d+)/.exec(run('java', ['-version']))?.[1];
  if (Number(version) < 17) throw new Error(`Kafka 4 needs Java 17 or newer; \`java -version\` says ${version}`);
}

function writeConfig(): void {
  mkdirSync(LOG_DIRS, { recursive: true });
  const properties = {
    'process.roles': 'broker,controller',
    'node.id': NODE_ID,
    'controller.quorum.voters': `${NODE_ID}@127.0.0.1:${CONTROLLER_PORT}`,
    listeners: `PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${PORT}`,
    'inter.broker.listener.name': 'PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': LOG_DIRS,
    'num.partitions': 3,
    'auto.create.topics.enable': false,
    'offsets.topic.replication.factor': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    // 50 partitions each by default: created on first use, a noticeable pause on 2 cores.
    'offsets.topic.num.partitions': 5,
    'transaction.state.log.num.partitions': 5,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,
    // Fewer threads than the defaults (3 network, 8 I/O): one test broker on 2 cores.
    'num.network.threads': 2,
    'num.io.threads': 4,
  };
  writeFileSync(
    CONFIG,
    [
      '# Written by scripts/services/kafka.ts on every start; edit that file, not this one.',
      ...Object.entries(properties).map(([key, value]) => `${key}=${value}`),
      '',
    ].join('\n'),
  );
  writeFileSync(
    LOG4J_CONFIG,
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

const jvm = (lib: string, heap: string[]) => [
  ...heap,
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-Djava.awt.headless=true',
  `-Dlog4j2.configurationFile=${LOG4J_CONFIG}`,
  `-Dkafka.logs.dir=${DIR}`,
  '-cp',
  `${lib}/*`,
];

/** Kafka's cluster id format: 16 random bytes, URL-safe base64 without padding, not starting with '-'. */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function formatStorage(lib: string): void {
  if (existsSync(join(LOG_DIRS, 'meta.properties'))) return;
  const id = clusterId();
  log(`formatting Kafka storage in ${LOG_DIRS} (cluster ${id})`);
  const result = spawnSync(
    'java',
    [...jvm(lib, ['-Xmx256m']), 'kafka.tools.StorageTool', 'format', '-t', id, '-c', CONFIG, '--ignore-formatted'],
    { cwd: DIR, encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`Kafka StorageTool format failed:\n${result.stdout}${result.stderr}`);
}

/** Our Kafka processes: started with our server.properties (the pid file names the main one). */
function ourPids(): number[] {
  const pids = new Set(findProcesses(CONFIG).filter((pid) => cmdline(pid).includes('kafka.')));
  const fromFile = livePid(PIDFILE, 'kafka.Kafka');
  if (fromFile !== undefined) pids.add(fromFile);
  return [...pids];
}

async function serving(timeoutMs = 3000): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'services-probe',
    brokers: [`127.0.0.1:${PORT}`],
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    const { brokers } = await admin.describeCluster();
    return brokers.some((b) => b.nodeId === NODE_ID && b.port === PORT);
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function waitUntilServing(pid: number | undefined): Promise<void> {
  const started = Date.now();
  await waitFor(
    'Kafka to serve metadata',
    READY_TIMEOUT_MS,
    async () => {
      if (pid !== undefined && !alive(pid)) throw new Error(`Kafka exited during start; ${OUTFILE}:\n${tail(OUTFILE)}`);
      return (await serving()) ? true : undefined;
    },
    500,
  ).catch((error: unknown) => {
    throw error instanceof Error && error.message.startsWith('timed out')
      ? new Error(`${error.message}; ${OUTFILE}:\n${tail(OUTFILE)}`)
      : error;
  });
  log(`Kafka serving on 127.0.0.1:${PORT} (${((Date.now() - started) / 1000).toFixed(1)} s after start)`);
}

async function up(): Promise<Settings> {
  const settings = { KAFKA_BROKERS: `127.0.0.1:${PORT}` };
  if (ourPids().length > 0) {
    const listening = existsSync(CONFIG) && readFileSync(CONFIG, 'utf8').includes(`PLAINTEXT://127.0.0.1:${PORT},`);
    if (!listening) {
      throw new Error(`Kafka runs with another port (see ${CONFIG}); stop it first: npm run services:down -- kafka`);
    }
    if (await serving()) {
      log(`Kafka already running on 127.0.0.1:${PORT}`);
    } else {
      log('Kafka is running but not serving yet; waiting');
      await waitUntilServing(undefined);
    }
    return settings;
  }
  for (const port of [PORT, CONTROLLER_PORT]) {
    if (await portOpen(port)) {
      throw new Error(`127.0.0.1:${port} is taken by another process; set SERVICES_KAFKA_PORT (and _CONTROLLER_PORT)`);
    }
  }
  ensureJava();
  const { lib, kafka } = kafkaJars();
  writeConfig();
  formatStorage(lib);
  log(`starting Kafka ${kafka} (KRaft, broker+controller) on 127.0.0.1:${PORT}`);
  const out = openSync(OUTFILE, 'a');
  writeSync(out, `\n=== ${new Date().toISOString()} starting Kafka ${kafka}\n`);
  const child = spawn('java', [...jvm(lib, HEAP), 'kafka.Kafka', CONFIG], {
    cwd: DIR,
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start java');
  child.unref();
  writeFileSync(PIDFILE, `${pid}\n`);
  await waitUntilServing(pid);
  return settings;
}

async function down(): Promise<void> {
  const pids = ourPids();
  if (pids.length === 0) {
    log('Kafka was not running');
  } else {
    await terminate(pids, 'Kafka', STOP_GRACE_MS);
    log('Kafka stopped');
  }
  rmSync(PIDFILE, { force: true });
}

export const kafka: Service = {
  name: 'kafka',
  up,
  down,
  running: async () => ourPids().length > 0 && (await serving()),
  pids: ourPids,
};
