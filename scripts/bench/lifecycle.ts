/**
 * The one lifecycle of every bench (`npm run bench`, `bench:profile`, `bench:cache`, `bench:tracing`,
 * `bench:capacity`, `bench:growth`): the backing services up (only those not running, and only those stopped
 * again), a scratch database of the bench's own, migrated by the bundles' own `migrate.mjs`, an OTLP sink so that
 * the functions trace as deployed (1 %), the bundles started the deployed way, a deadline, and on every exit path
 * (end, error, Ctrl-C, deadline) the processes, Redis keys, Kafka topic and database removed again.
 *
 * The deployed way: knative/base/settings.env, the image's NODE_OPTIONS (read from the Dockerfile), group commit,
 * the relay inside ingest, Redis and Kafka on, tracing to OTLP at the default 1 %, one access-log line per request
 * (stdout discarded), bearer tokens verified against a JWKS (served here, by a key made for the run) with the
 * per-caller rate limit counted in Redis (its limit raised so that one bench caller is never refused).
 * `BENCH_AUTH=none` runs the same with AUTH_MODE=none, for the cost of access control. Only the addresses, the
 * Kafka topic, the Redis key prefix and the token issuer are the bench's own.
 * BENCH_DIST (or `--dist DIR`) points at another build, e.g. an older commit's, which is then used as it is.
 * BENCH_NODE_OPTIONS replaces the image's NODE_OPTIONS, to try V8 flags before the Dockerfile takes them.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { issuerOf, newIssuerKey } from '../local-issuer.ts';
import {
  freePort,
  logger,
  procStat,
  ROOT,
  rssMiB,
  runOk,
  type Started,
  startProcess,
  stopAll,
  waitForHttp,
} from '../processes.ts';
import { kafka } from '../services/kafka.ts';
import { postgres } from '../services/postgres.ts';
import { redis } from '../services/redis.ts';
import { CORES } from './cost.ts';
import { databaseUrl, type PgTarget, recreateDatabase } from './pg.ts';

export const say = logger('bench');

export function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}=${raw} is not a positive integer`);
  return value;
}

/** The bundles to measure: BENCH_DIST or `--dist DIR` (taken as built), else this tree's dist/ (built first). */
const distArg = process.argv.indexOf('--dist');
const distGiven = (distArg >= 0 ? process.argv[distArg + 1] : undefined) ?? process.env.BENCH_DIST;
export const DIST = distGiven ? resolve(process.env.INIT_CWD ?? process.cwd(), distGiven) : join(ROOT, 'dist');
/** The command line without `--dist DIR`. */
export const ARGS = process.argv.slice(2).filter((_, i, all) => all[i] !== '--dist' && all[i - 1] !== '--dist');

/** Kept equal to the image: the Dockerfile's `ENV NODE_OPTIONS=…`; BENCH_NODE_OPTIONS tries others before it changes. */
const IMAGE_NODE_OPTIONS =
  process.env.BENCH_NODE_OPTIONS ??
  /^ENV NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1] ??
  '';
const DEPLOYED_SETTINGS = parseEnv(readFileSync(join(ROOT, 'knative', 'base', 'settings.env'), 'utf8'));

/** A function bundle started by the bench (the last of `starts` starts keeps running). */
export interface StartedBundle {
  readonly name: 'ingest' | 'query';
  readonly port: number;
  readonly url: string;
  readonly process: Started;
  /** Spawn → first 200 from /readyz, per start. */
  readonly startMs: readonly number[];
  /** CPU the process used until then, per start. */
  readonly startCpuMs: readonly number[];
  readonly idleRssMiB: number;
}

export interface BenchContext {
  readonly runId: string;
  readonly pg: PgTarget;
  readonly database: string;
  readonly databaseUrl: string;
  readonly redisPrefix: string;
  readonly kafkaTopic: string;
  /** A temporary folder, removed at the end. */
  readonly tmp: string;
  /** Spans the functions exported to the sink so far. */
  readonly sink: { posts: number; bytes: number };
  /** What a request to a function carries: a bearer token granting every source ({} with BENCH_AUTH=none). */
  readonly requestHeaders: Readonly<Record<string, string>>;
  /** The deployed environment of a function; `overrides` win, `undefined` unsets. */
  functionEnv(overrides?: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv;
  /** Starts `<dist>/<name>.mjs` `starts` times, timing each start; extra `nodeArgs` (e.g. --cpu-prof) go first. */
  startBundle(
    name: 'ingest' | 'query',
    env: NodeJS.ProcessEnv,
    options?: { starts?: number; nodeArgs?: readonly string[] },
  ): Promise<StartedBundle>;
}

export interface BenchSpec {
  /** bench-results/<name>.json; the database is `data_service_bench_<name>` unless `database` is given. */
  readonly name: string;
  readonly database?: string;
  readonly deadlineSeconds: number;
  /** Migrate the database with the bundles' migrate.mjs (default true). */
  readonly migrate?: boolean;
  /** What goes into bench-results/<name>.json beside the run's metadata. */
  readonly body: (ctx: BenchContext) => Promise<Record<string, unknown>>;
}

/** Runs one bench end to end; everything it started is stopped and removed on every exit path. */
export async function runBench(spec: BenchSpec): Promise<void> {
  const runId = randomBytes(4).toString('hex');
  const database = spec.database ?? `data_service_bench_${spec.name.replaceAll('-', '_')}`;
  const redisPrefix = `bench:${spec.name}:${runId}:`;
  const kafkaTopic = `data-service-bench-${spec.name}-${runId}`;
  const tmp = mkdtempSync(join(tmpdir(), `data-service-bench-${spec.name}-`));
  const sink = { posts: 0, bytes: 0 };
  const auth = process.env.BENCH_AUTH === 'none' ? undefined : await issuerOf(await newIssuerKey());
  const jwks = Buffer.from(JSON.stringify(auth?.jwks ?? { keys: [] }));
  // The OTLP sink, and the issuer's key set on the same loopback server.
  const otlp = createServer((req, res) => {
    if (req.url === '/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks);
      return;
    }
    req.on('data', (chunk: Buffer) => {
      sink.bytes += chunk.length;
    });
    req.on('end', () => {
      sink.posts++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const startedServices: string[] = [];
  const settings: Record<string, string> = {};
  let pg: PgTarget | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      await stopAll(25_000);
      otlp.close();
      const steps: Array<[string, () => Promise<unknown>]> = [
        ['Redis keys', async () => settings.REDIS_URL && deleteKeys(settings.REDIS_URL, redisPrefix)],
        ['Kafka topic', async () => settings.KAFKA_BROKERS && deleteTopic(settings.KAFKA_BROKERS, kafkaTopic)],
        ['database', async () => pg && process.env.BENCH_KEEP_DB !== '1' && recreateDatabase(pg, database, true)],
        ...[postgres, redis, kafka]
          .filter((s) => startedServices.includes(s.name))
          .map((s): [string, () => Promise<unknown>] => [s.name, () => s.down()]),
      ];
      for (const [what, step] of steps) {
        await step().catch((error: unknown) => say(`cleanup of ${what} failed: ${String(error)}`));
      }
      rmSync(tmp, { recursive: true, force: true });
    })();
    return cleaning;
  };
  const abort = async (reason: string, code: number) => {
    say(`${reason}: stopping everything this run started`);
    await cleanup();
    process.exit(code);
  };
  process.on('SIGINT', () => void abort('interrupted', 130));
  process.on('SIGTERM', () => void abort('terminated', 143));
  // kafkajs 2.2.4 sets a negative timer under Node 24 (tulios/kafkajs#1751): harmless, not worth a line.
  process.removeAllListeners('warning');
  process.on('warning', (w) => w.name !== 'TimeoutNegativeWarning' && say(`warning: ${w.message}`));
  const deadline = setTimeout(
    () => void abort(`deadline of ${spec.deadlineSeconds} s reached`, 124),
    spec.deadlineSeconds * 1000,
  );
  const began = performance.now();
  try {
    say(`${spec.name} run ${runId} on ${CORES} cores, bundles from ${DIST}, database ${database}`);
    for (const service of [postgres, redis, kafka]) {
      if (!(await service.running())) startedServices.push(service.name);
      Object.assign(settings, await service.up());
    }
    if (startedServices.length > 0) say(`started ${startedServices.join(', ')} (stopped again at the end)`);
    const admin = new URL(settings.DATABASE_URL ?? '');
    pg = { host: admin.hostname, port: Number(admin.port), user: admin.username };
    await recreateDatabase(pg, database);
    await new Promise<void>((done) => otlp.listen(0, '127.0.0.1', done));
    const url = databaseUrl(pg, database);
    const functionEnv = (overrides: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv => {
      const env: NodeJS.ProcessEnv = {
        ...DEPLOYED_SETTINGS,
        PATH: process.env.PATH,
        HOST: '127.0.0.1',
        NODE_OPTIONS: IMAGE_NODE_OPTIONS,
        // As the image runs them (Dockerfile): with the bundles' code cache, when this build has one.
        ...(existsSync(join(DIST, '.compile-cache'))
          ? { NODE_COMPILE_CACHE: join(DIST, '.compile-cache'), NODE_COMPILE_CACHE_PORTABLE: '1' }
          : {}),
        DATABASE_URL: url,
        REDIS_URL: settings.REDIS_URL,
        KAFKA_BROKERS: settings.KAFKA_BROKERS,
        KAFKA_TOPIC: kafkaTopic,
        REDIS_KEY_PREFIX: redisPrefix,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(otlp.address() as AddressInfo).port}`,
        CURSOR_SECRET: `bench-cursor-secret-${runId}`,
        ...(auth === undefined
          ? { AUTH_MODE: 'none' }
          : {
              AUTH_JWKS_URL: `http://127.0.0.1:${(otlp.address() as AddressInfo).port}/jwks.json`,
              AUTH_ISSUER: auth.issuer,
              AUTH_AUDIENCE: auth.audience,
              // Counted as deployed, never reached: one caller sends every request of a bench.
              RATE_LIMIT_PER_SECOND: '10000000',
              RATE_LIMIT_BURST: '10000000',
            }),
      };
      for (const [key, value] of Object.entries(overrides)) {
        if (value === undefined) delete env[key];
        else env[key] = value;
      }
      return env;
    };
    if (!distGiven) {
      say('building the bundles (node esbuild.config.mjs)');
      await runOk(process.execPath, ['esbuild.config.mjs'], { timeoutMs: 180_000 });
    }
    if (spec.migrate !== false) {
      await runOk(process.execPath, [join(DIST, 'migrate.mjs')], { env: functionEnv(), timeoutMs: 120_000 });
    }
    const token = await auth?.sign({ subject: 'bench', write: ['*'], read: ['*'], ttlSeconds: 4 * 3_600 });
    const result = await spec.body({
      runId,
      requestHeaders: token === undefined ? {} : { authorization: `Bearer ${token}` },
      pg,
      database,
      databaseUrl: url,
      redisPrefix,
      kafkaTopic,
      tmp,
      sink,
      functionEnv,
      startBundle: (name, env, options = {}) => startBundle(name, env, options.starts ?? 1, options.nodeArgs ?? []),
    });
    const dir = join(ROOT, 'bench-results');
    mkdirSync(dir, { recursive: true });
    const meta = {
      date: new Date().toISOString(),
      command: `node scripts/${process.argv[1]?.split('/scripts/')[1] ?? 'bench.ts'} ${process.argv.slice(2).join(' ')}`,
      dist: DIST,
      run_id: runId,
      duration_seconds: Math.round((performance.now() - began) / 100) / 10,
      machine: { cores: CORES, load_average_at_end: loadavg().map((l) => Math.round(l * 100) / 100) },
    };
    writeFileSync(join(dir, `${spec.name}.json`), `${JSON.stringify({ ...meta, ...result }, null, 2)}\n`);
    say(`written bench-results/${spec.name}.json; ${((performance.now() - began) / 1000).toFixed(0)} s in all`);
  } catch (error) {
    if (cleaning === undefined) {
      say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exitCode = 1;
    }
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

async function startBundle(
  name: 'ingest' | 'query',
  env: NodeJS.ProcessEnv,
  starts: number,
  nodeArgs: readonly string[],
): Promise<StartedBundle> {
  const file = join(DIST, `${name}.mjs`);
  if (!existsSync(file)) throw new Error(`${file} does not exist: build it first (npm run build)`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const startMs: number[] = [];
  const startCpuMs: number[] = [];
  for (let i = 1; ; i++) {
    const started = startProcess(process.execPath, [...nodeArgs, file], {
      env: { ...env, PORT: String(port), K_SERVICE: `bench-${name}` },
    });
    try {
      startMs.push(await waitForHttp(`${url}/readyz`, { since: started.spawnedAt, intervalMs: 5, process: started }));
    } catch (error) {
      throw new Error(`${name}: ${String(error)}\n${started.tail()}`);
    }
    startCpuMs.push((procStat(started.pid)?.cpuSeconds ?? 0) * 1000);
    if (i >= starts) return { name, port, url, process: started, startMs, startCpuMs, idleRssMiB: rssMiB(started.pid) };
    await started.stop(25_000);
  }
}

/** Unlinks every Redis key of the run. */
async function deleteKeys(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

/** Deletes the run's Kafka topic (bounded): its events are of no use afterwards. */
async function deleteTopic(brokers: string, topic: string): Promise<void> {
  const admin = new Kafka({
    clientId: 'data-service-bench',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries: 1 },
  }).admin();
  await admin.connect();
  try {
    if ((await admin.listTopics()).includes(topic)) await admin.deleteTopics({ topics: [topic], timeout: 5_000 });
  } finally {
    await admin.disconnect();
  }
}
