/**
 * The service under test and what it needs: the backing services (started through `scripts/services.ts` only when
 * they are not already running, and then stopped again), the bundles, the migration of the bench database, and
 * the function processes with their start → first answered request time.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, freePort, machineJiffies, run, runOk, type Started, say, start, waitForAnswer } from './proc.ts';

const cores = () => availableParallelism();

export const SERVICE_NAMES = ['postgres', 'redis', 'kafka'] as const;

export interface ServiceSettings {
  readonly pg: { host: string; port: number; user: string };
  readonly redis: { host: string; port: number };
  readonly redisUrl: string;
  readonly kafkaBrokers: string;
  /** The services this run started (and so stops at the end). */
  readonly startedHere: readonly string[];
}

/** Starts whichever services are not running and returns the settings `services:up` prints. */
export async function servicesUp(root: string): Promise<ServiceSettings> {
  const script = join(root, 'scripts', 'services.ts');
  const status = await run(process.execPath, [script, 'status'], { timeoutMs: 60_000, cwd: root });
  const stopped = SERVICE_NAMES.filter((name) => !new RegExp(`^${name} running$`, 'm').test(status.stdout));
  if (stopped.length > 0) say(`starting services: ${stopped.join(', ')} (stopped again at the end)`);
  const out = await runOk(process.execPath, [script, 'up'], { timeoutMs: 300_000, cwd: root });
  const exported = Object.fromEntries(
    [...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1] ?? '', (m[2] ?? '').trim()]),
  );
  const database = new URL(exported.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:25432/data_service_test');
  const redis = new URL(exported.REDIS_URL ?? 'redis://127.0.0.1:26379');
  return {
    pg: { host: database.hostname, port: Number(database.port || 5432), user: database.username || 'postgres' },
    redis: { host: redis.hostname, port: Number(redis.port || 6379) },
    redisUrl: `redis://${redis.hostname}:${redis.port || 6379}`,
    kafkaBrokers: exported.KAFKA_BROKERS ?? '127.0.0.1:29092',
    startedHere: stopped,
  };
}

export async function servicesDown(root: string, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  say(`stopping the services this run started: ${names.join(', ')}`);
  await run(process.execPath, [join(root, 'scripts', 'services.ts'), 'down', ...names], {
    timeoutMs: 120_000,
    cwd: root,
  });
}

export async function buildBundles(root: string): Promise<void> {
  await runOk(process.execPath, [join(root, 'esbuild.config.mjs')], { timeoutMs: 120_000, cwd: root });
}

export async function migrate(root: string, env: NodeJS.ProcessEnv): Promise<void> {
  await runOk(process.execPath, [join(root, 'dist', 'migrate.mjs')], { env, timeoutMs: 120_000, cwd: root });
}

export interface RunningFunction {
  readonly name: string;
  readonly port: number;
  readonly process: Started;
  /** Process start → first 200 from /readyz, one figure per start (the last start keeps running). */
  readonly startMs: readonly number[];
  /** CPU the process itself used until that first answer (independent of other load on the machine). */
  readonly startCpuMs: readonly number[];
  /** Cores busy machine-wide during each start (2 = the machine was saturated). */
  readonly startBusyCores: readonly number[];
}

/**
 * Starts `dist/<name>.mjs` `starts` times in a row, each time measuring spawn → first 200 on /readyz (polled
 * every 5 ms on a fresh connection), stopping all but the last, which is returned running.
 */
/** Kept equal to the Dockerfile's ENV NODE_OPTIONS. */
export const NODE_OPTIONS_OF_IMAGE = '--max-semi-space-size=16';

export async function startFunction(
  root: string,
  name: 'ingest' | 'query',
  env: NodeJS.ProcessEnv,
  starts: number,
): Promise<RunningFunction> {
  const port = await freePort();
  const startMs: number[] = [];
  const startCpuMs: number[] = [];
  const startBusyCores: number[] = [];
  for (let i = 0; ; i++) {
    const before = machineJiffies();
    const started = start(process.execPath, [join(root, 'dist', `${name}.mjs`)], {
      ...env,
      // The image's V8 setting (Dockerfile): without it V8 sizes its young generation from the host's memory.
      NODE_OPTIONS: env.NODE_OPTIONS ?? NODE_OPTIONS_OF_IMAGE,
      PORT: String(port),
      K_SERVICE: `bench-${name}`,
    });
    startMs.push(await waitForAnswer(started, port, '/readyz', 30_000));
    startCpuMs.push(cpuSeconds(started.pid) * 1000);
    const after = machineJiffies();
    startBusyCores.push(((after.busy - before.busy) / Math.max(1, after.total - before.total)) * cores());
    if (i + 1 >= starts) return { name, port, process: started, startMs, startCpuMs, startBusyCores };
    await started.stop(10_000);
  }
}

/** Deletes the bench's Kafka topic (best effort, bounded): the events of a bench run are of no use afterwards. */
export async function deleteTopic(brokers: string, topic: string): Promise<void> {
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({
    clientId: 'data-service-bench',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries: 1 },
  }).admin();
  const attempt = (async () => {
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      if (topics.includes(topic)) await admin.deleteTopics({ topics: [topic], timeout: 5_000 });
    } finally {
      await admin.disconnect();
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    attempt,
    new Promise((_, fail) => (timer = setTimeout(() => fail(new Error('timeout')), 15_000))),
  ]);
  clearTimeout(timer);
}
