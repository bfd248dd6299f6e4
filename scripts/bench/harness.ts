/**
 * What the focused bench scripts (`bench:cache`, `bench:tracing`, `bench:capacity`, `bench:growth`) share on top of
 * the helpers of `npm run bench`: one lifecycle (services up, a scratch database of their own, a deadline, and on
 * every exit path the processes, Redis keys, Kafka topic and database removed again), the function bundles
 * started with a chosen environment, constant-rate vegeta attacks with their report, and /metrics counters.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureVegeta } from '../load/tools.ts';
import { databaseUrl, dropDatabase, recreateDatabase } from './pg.ts';
import { cpuByComm, cpuSeconds, killAllNow, machineJiffies, run, runTimed, say, stopAll } from './proc.ts';
import { deleteKeys } from './redis.ts';
import { round } from './report.ts';
import {
  buildBundles,
  deleteTopic,
  migrate,
  type RunningFunction,
  type ServiceSettings,
  servicesDown,
  servicesUp,
  startFunction,
} from './service.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CORES = availableParallelism();

export function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}=${raw} is not a positive integer`);
  return value;
}

export interface BenchContext {
  readonly svc: ServiceSettings;
  readonly runId: string;
  /** Every Redis key of the run starts with this (deleted at the end). */
  readonly redisPrefix: string;
  readonly kafkaTopic: string;
  readonly database: string;
  readonly databaseUrl: string;
  /** A temporary folder (removed at the end). */
  readonly tmp: string;
  /** DATABASE_URL, REDIS_URL, KAFKA_* etc. as `npm run bench` gives the bundles; `overrides` win, `undefined` unsets. */
  functionEnv(overrides?: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv;
  /** Starts `dist/<name>.mjs` (once) and waits for /readyz. */
  startBundle(name: 'ingest' | 'query', env: NodeJS.ProcessEnv): Promise<RunningFunction>;
}

export interface BenchSpec {
  /** Short name: bench-results/<name>.json, the database `data_service_<name>` unless `database` is given. */
  readonly name: string;
  readonly database?: string;
  readonly deadlineSeconds: number;
  /** Build and migrate (default true). */
  readonly migrate?: boolean;
  /** Runs after the database is created (and migrated); returns what goes into bench-results/<name>.json. */
  readonly body: (ctx: BenchContext) => Promise<unknown>;
}

/** Runs one bench script end to end; everything it started is stopped and removed on every exit path. */
export async function runBench(spec: BenchSpec): Promise<void> {
  const runId = randomBytes(4).toString('hex');
  const redisPrefix = `bench:${spec.name}:${runId}:`;
  const kafkaTopic = `data-service-bench-${spec.name}`;
  const database = spec.database ?? `data_service_bench_${spec.name}`;
  const keepDb = process.env.BENCH_KEEP_DB === '1';
  const tmp = mkdtempSync(join(tmpdir(), `data-service-${spec.name}-`));
  let svc: ServiceSettings | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      await stopAll(10_000);
      const s = svc;
      if (s !== undefined) {
        const steps: Array<[string, () => Promise<unknown>]> = [
          ['Redis keys', () => deleteKeys(s.redis, redisPrefix)],
          ['Kafka topic', () => deleteTopic(s.kafkaBrokers, kafkaTopic)],
          ['database', () => (keepDb ? Promise.resolve() : dropDatabase(s.pg, database))],
          ['services', () => servicesDown(ROOT, s.startedHere)],
        ];
        for (const [what, step] of steps) {
          try {
            await step();
          } catch (error) {
            say(`cleanup of ${what} failed: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
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
  process.on('exit', killAllNow);
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name !== 'TimeoutNegativeWarning') say(`warning: ${warning.message}`);
  });
  const deadline = setTimeout(
    () => void abort(`deadline of ${spec.deadlineSeconds} s reached`, 124),
    spec.deadlineSeconds * 1000,
  );
  const began = performance.now();
  try {
    say(`${spec.name} run ${runId} on ${CORES} cores; services from scripts/services.ts; database ${database}`);
    svc = await servicesUp(ROOT);
    await recreateDatabase(svc.pg, database);
    const s = svc;
    const url = databaseUrl(s.pg, database);
    const functionEnv = (overrides: Readonly<Record<string, string | undefined>> = {}) => {
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        DATABASE_URL: url,
        REDIS_URL: s.redisUrl,
        KAFKA_BROKERS: s.kafkaBrokers,
        KAFKA_TOPIC: kafkaTopic,
        REDIS_KEY_PREFIX: redisPrefix,
        HOST: '127.0.0.1',
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL || 'info',
        DRAIN_TIMEOUT_MS: '5000',
      };
      for (const [key, value] of Object.entries(overrides)) {
        if (value === undefined) delete env[key];
        else env[key] = value;
      }
      return env;
    };
    if (spec.migrate !== false) {
      say('building the bundles and migrating the database');
      await buildBundles(ROOT);
      await migrate(ROOT, functionEnv());
    }
    const result = await spec.body({
      svc: s,
      runId,
      redisPrefix,
      kafkaTopic,
      database,
      databaseUrl: url,
      tmp,
      functionEnv,
      startBundle: (name, env) => startFunction(ROOT, name, env, 1),
    });
    const dir = join(ROOT, 'bench-results');
    mkdirSync(dir, { recursive: true });
    const out = {
      date: new Date().toISOString(),
      command: `npm run bench:${spec.name}`,
      run_id: runId,
      duration_seconds: round((performance.now() - began) / 1000, 1),
      machine: { cores: CORES },
      result,
    };
    writeFileSync(join(dir, `${spec.name}.json`), `${JSON.stringify(out, null, 2)}\n`);
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

// ---------------------------------------------------------------------------------------------------------------
// vegeta: constant-rate attacks on a targets file, measured with the CPU of the serving processes.

export interface Target {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly body?: string;
}

/** Writes vegeta JSON targets (one a line; the body base64). */
export function writeTargets(path: string, targets: Iterable<Target>): void {
  const lines: string[] = [];
  for (const t of targets) {
    lines.push(
      JSON.stringify({
        method: t.method,
        url: t.url,
        header: t.body === undefined ? {} : { 'Content-Type': ['application/json'] },
        ...(t.body !== undefined && { body: Buffer.from(t.body, 'utf8').toString('base64') }),
      }),
    );
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
}

export interface AttackOutcome {
  readonly rate: number;
  readonly seconds: number;
  readonly requests: number;
  /** Successful responses per second. */
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Share of requests that did not get a 2xx/3xx. */
  readonly errorRatio: number;
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly errorSamples: readonly string[];
  /** Cores used by vegeta (attack), and by each watched process, during the attack. */
  readonly generatorCores: number;
  readonly processCores: Readonly<Record<string, number>>;
  readonly postgresCores: number;
  readonly machineBusyCores: number;
}

interface VegetaJsonReport {
  readonly latencies: Record<'mean' | '50th' | '90th' | '99th' | 'max', number>;
  readonly duration: number;
  readonly requests: number;
  readonly throughput: number;
  readonly success: number;
  readonly status_codes: Record<string, number>;
  readonly errors: readonly string[] | null;
}

let vegetaPath: string | undefined;

/**
 * One vegeta attack at `rate` req/s for `seconds` over `targets` (cycled when shorter), at most `maxWorkers`
 * in flight, 5 s timeout; `watch` names processes whose CPU is measured over the attack.
 */
export async function attack(options: {
  readonly targets: string;
  readonly rate: number;
  readonly seconds: number;
  readonly dir: string;
  readonly name: string;
  readonly maxWorkers?: number;
  readonly watch?: Readonly<Record<string, number>>;
}): Promise<AttackOutcome> {
  vegetaPath ??= ensureVegeta();
  const output = join(options.dir, `${options.name}.bin`);
  const watch = options.watch ?? {};
  const before = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const pg0 = cpuByComm('postgres');
  const m0 = machineJiffies();
  const t0 = performance.now();
  const attacked = await runTimed(
    vegetaPath,
    [
      'attack',
      '-format=json',
      `-targets=${options.targets}`,
      `-output=${output}`,
      `-rate=${Math.max(1, Math.round(options.rate))}/1s`,
      `-duration=${options.seconds}s`,
      '-timeout=5s',
      `-max-workers=${options.maxWorkers ?? 1024}`,
      `-name=${options.name}`,
    ],
    { timeoutMs: (options.seconds + 40) * 1000 },
  );
  const wall = (performance.now() - t0) / 1000;
  const m1 = machineJiffies();
  const pg1 = cpuByComm('postgres');
  if (attacked.code !== 0) throw new Error(`vegeta attack ${options.name} failed: ${attacked.stderr.trim()}`);
  const processCores = Object.fromEntries(
    Object.entries(watch).map(([k, pid]) => [k, round((cpuSeconds(pid) - (before[k] ?? 0)) / wall, 2)]),
  );
  let pgSeconds = 0;
  for (const [pid, last] of pg1) pgSeconds += last - (pg0.get(pid) ?? 0);
  const reported = await run(vegetaPath, ['report', '-type=json', output], { timeoutMs: 60_000 });
  if (reported.code !== 0) throw new Error(`vegeta report failed: ${reported.stderr.trim()}`);
  rmSync(output, { force: true });
  const r = JSON.parse(reported.stdout) as VegetaJsonReport;
  const ms = (ns: number) => round(ns / 1e6, 2);
  return {
    rate: options.rate,
    seconds: round(r.duration / 1e9, 2),
    requests: r.requests,
    throughput: round(r.throughput, 1),
    p50Ms: ms(r.latencies['50th']),
    p90Ms: ms(r.latencies['90th']),
    p99Ms: ms(r.latencies['99th']),
    maxMs: ms(r.latencies.max),
    meanMs: ms(r.latencies.mean),
    errorRatio: round(1 - r.success, 5),
    statusCodes: r.status_codes,
    errorSamples: (r.errors ?? []).slice(0, 3),
    generatorCores: round(attacked.cpuSeconds / wall, 2),
    processCores,
    postgresCores: round(pgSeconds / wall, 2),
    machineBusyCores: round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * CORES, 2),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Records and requests.

/** A random v4 UUID (client-supplied record id). */
export function recordId(): string {
  return crypto.randomUUID();
}

export const recordBody = (id: string, source: string, seq: number): string =>
  JSON.stringify({ id, source, type: 'reading', payload: { seq, unit: 'C', value: 21.5 } });

/** POSTs `ids` as records of `source`, 100 a request; throws at the first refused batch. */
export async function prefill(ingestPort: number, ids: readonly string[], source: string): Promise<void> {
  for (let i = 0; i < ids.length; i += 100) {
    const records = ids.slice(i, i + 100).map((id, k) => JSON.parse(recordBody(id, source, i + k)) as unknown);
    const response = await fetch(`http://127.0.0.1:${ingestPort}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`prefill refused (${response.status}): ${text.slice(0, 300)}`);
  }
}

/** Index into `count` ids with `hotShare` of the picks on the first `hotFraction` of them (e.g. 80 % on 20 %). */
export function skewedIndex(count: number, hotFraction: number, hotShare: number): number {
  const hot = Math.max(1, Math.floor(count * hotFraction));
  return Math.random() < hotShare ? Math.floor(Math.random() * hot) : hot + Math.floor(Math.random() * (count - hot));
}

/** Sum of a counter's samples in /metrics whose labels include every `labels` pair (0 when absent). */
export async function scrapeCounter(
  port: number,
  metric: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) =>
    r.text(),
  );
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const m = /^(\w+)(\{[^}]*\})?\s+([\d.eE+-]+)/.exec(line);
    if (m === null || m[1] !== metric) continue;
    const labelText = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** Pads a table of strings into aligned columns (first column left, the others right). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
