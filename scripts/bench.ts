/**
 * `npm run bench`: one run on this machine that measures the ceilings of the parts, a naive reference and the
 * service, and prints them as one table of ratios from the same run (docs/benchmarks.md explains the method).
 *
 * - ceilings: bare node:http (`node-hello`, wrk), PostgreSQL single-row INSERT, 100-row INSERT and primary-key
 *   SELECT (pgbench, custom scripts), Redis GET (redis-benchmark);
 * - naive: node:http + node-pg, one INSERT per POST and one SELECT per GET (`naive-post`, `naive-get`);
 * - service: the esbuild bundles `dist/ingest.mjs` and `dist/query.mjs` on PostgreSQL, Redis and Kafka
 *   (`post-one`, `post-batch-100`, `get-hot`, `get-cold`, `list-page`), plus each bundle's RSS at full load and
 *   its process start → first answered request.
 *
 * `node scripts/bench.ts [ceilings] [naive] [service]` runs a subset (default: all; a subset writes
 * `bench-results/<parts>.json` instead of `latest.json`). Settings by env: BENCH_CONNECTIONS (32),
 * BENCH_SECONDS (8), BENCH_WARMUP_SECONDS (2), BENCH_PG_CLIENTS (32), BENCH_STARTS (5), BENCH_LOG_LEVEL (info),
 * BENCH_DEADLINE_SECONDS (900), BENCH_KEEP_DB=1 (keep the bench database afterwards).
 *
 * Loopback only; everything it starts (servers, load generators, and backing services that were not already
 * running) is stopped before it exits, also on error, Ctrl-C or the deadline.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BENCH_DB,
  benchUrl,
  createBenchTables,
  dropBenchDatabase,
  PG_BIN,
  type PgbenchOutcome,
  pgbench,
  pgbenchScripts,
  psql,
  recreateBenchDatabase,
} from './bench/pg.ts';
import {
  cpuByComm,
  cpuSeconds,
  freePort,
  hasCommand,
  killAllNow,
  machineJiffies,
  probe,
  rssMiB,
  run,
  type Started,
  say,
  sleep,
  start,
  stopAll,
  waitForAnswer,
} from './bench/proc.ts';
import { deleteKeys, redisGet, seedKey } from './bench/redis.ts';
import {
  computeRatios,
  type Entry,
  type Kind,
  round,
  startupLines,
  table,
  verdictLines,
  verdicts,
} from './bench/report.ts';
import {
  buildBundles,
  deleteTopic,
  migrate,
  type RunningFunction,
  type ServiceSettings,
  servicesDown,
  servicesUp,
  startFunction,
} from './bench/service.ts';
import { benchId, luaScripts, type WrkOutcome, writtenRange, wrk } from './bench/wrk.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CORES = availableParallelism();
const PARTS = ['ceilings', 'naive', 'service'] as const;
type Part = (typeof PARTS)[number];
const KAFKA_TOPIC = 'data-service-bench';
const BATCH = 100;
const HOT_IDS = 100;

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}=${raw} is not a positive integer`);
  return value;
}

const settings = {
  connections: intEnv('BENCH_CONNECTIONS', 32),
  seconds: intEnv('BENCH_SECONDS', 8),
  warmupSeconds: intEnv('BENCH_WARMUP_SECONDS', 2),
  pgClients: intEnv('BENCH_PG_CLIENTS', 32),
  starts: intEnv('BENCH_STARTS', 5),
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 900),
  logLevel: process.env.BENCH_LOG_LEVEL || 'info',
  keepDb: process.env.BENCH_KEEP_DB === '1',
};

const requested = process.argv.slice(2);
const unknown = requested.filter((p) => !(PARTS as readonly string[]).includes(p));
if (unknown.length > 0) {
  process.stderr.write(`unknown part ${unknown.join(', ')}; use ${PARTS.join(', ')}\n`);
  process.exit(2);
}
const parts = new Set<Part>(requested.length === 0 ? PARTS : (requested as Part[]));
const fullRun = parts.size === PARTS.length;

const runId = randomBytes(4).toString('hex');
const redisPrefix = `bench:${runId}:`;
const tmp = mkdtempSync(join(tmpdir(), 'data-service-bench-'));
const entries: Entry[] = [];
const extra: Record<string, unknown> = {};
const startedAt = new Date();
const t0 = performance.now();
let services: ServiceSettings | undefined;
let phase = 0;
const nextPhase = () => ++phase;

// ---------------------------------------------------------------------------------------------------------------
// Measuring: CPU of the load generator (from the tool), of the server process and of PostgreSQL (from /proc),
// the machine's busy cores, and the serving process's peak RSS.

interface Measured<T> {
  readonly result: T;
  readonly wallSeconds: number;
  readonly serverCpuSeconds: number;
  readonly postgresCores: number;
  readonly machineBusyCores: number;
  readonly serverRssMiB: number;
}

async function measure<T>(serverPid: number | undefined, work: () => Promise<T>): Promise<Measured<T>> {
  const cpu0 = serverPid === undefined ? 0 : cpuSeconds(serverPid);
  // PostgreSQL backends come and go (pgbench connects per run): keep each one's first and last CPU reading.
  const pgFirst = cpuByComm('postgres');
  const pgLast = new Map(pgFirst);
  const samplePostgres = () => {
    for (const [pid, seconds] of cpuByComm('postgres')) {
      if (!pgFirst.has(pid)) pgFirst.set(pid, 0);
      pgLast.set(pid, seconds);
    }
  };
  const m0 = machineJiffies();
  const began = performance.now();
  let rss = serverPid === undefined ? 0 : rssMiB(serverPid);
  const sampler = setInterval(() => {
    if (serverPid !== undefined) rss = Math.max(rss, rssMiB(serverPid));
    samplePostgres();
  }, 200);
  let result: T;
  try {
    result = await work();
  } finally {
    clearInterval(sampler);
  }
  const wallSeconds = (performance.now() - began) / 1000;
  const m1 = machineJiffies();
  samplePostgres();
  let pgSeconds = 0;
  for (const [pid, last] of pgLast) pgSeconds += last - (pgFirst.get(pid) ?? 0);
  return {
    result,
    wallSeconds,
    serverCpuSeconds: serverPid === undefined ? 0 : cpuSeconds(serverPid) - cpu0,
    postgresCores: pgSeconds / wallSeconds,
    machineBusyCores: ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * CORES,
    serverRssMiB: rss,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP cases with wrk: a warm-up run (discarded), then the measured run.

interface HttpCase {
  readonly name: string;
  readonly kind: Kind;
  readonly port: number;
  readonly path: string;
  readonly script: string;
  readonly server: Started;
  readonly baseline: string | null;
  readonly warmArgs?: readonly (string | number)[];
  readonly args?: (warm: WrkOutcome) => readonly (string | number)[];
  readonly rowsPerRequest?: number;
  readonly note?: string;
}

async function httpCase(c: HttpCase): Promise<{ entry: Entry; outcome: WrkOutcome }> {
  const url = `http://127.0.0.1:${c.port}${c.path}`;
  const common = { url, script: c.script, connections: settings.connections, dir: tmp };
  say(`${c.name}: ${settings.warmupSeconds} s warm-up + ${settings.seconds} s, ${settings.connections} connections`);
  const warm = await wrk({
    ...common,
    name: `${c.name}-warm`,
    seconds: settings.warmupSeconds,
    args: c.warmArgs ?? [],
  });
  const m = await measure(c.server.pid, () =>
    wrk({ ...common, name: c.name, seconds: settings.seconds, args: c.args?.(warm) ?? c.warmArgs ?? [] }),
  );
  const o = m.result;
  const entry: Entry = {
    name: c.name,
    rps: round(o.rps, 1),
    p50_ms: round(o.p50Ms, 3),
    p99_ms: round(o.p99Ms, 3),
    baseline: c.baseline,
    ratio: null,
    kind: c.kind,
    tool: `wrk -t1 -c${settings.connections}`,
    ...(c.rowsPerRequest !== undefined && { rows_per_s: round(o.rps * c.rowsPerRequest, 0) }),
    requests: o.requests,
    seconds: round(o.seconds, 2),
    errors: o.errors,
    cpu_cores: {
      load_generator: round(o.cpuSeconds / m.wallSeconds, 2),
      server: round(m.serverCpuSeconds / m.wallSeconds, 2),
      postgres: round(m.postgresCores, 2),
      machine_busy: round(m.machineBusyCores, 2),
    },
    server_cpu_us_per_request: o.requests > 0 ? round((m.serverCpuSeconds / o.requests) * 1e6, 0) : 0,
    rss_mib: round(m.serverRssMiB, 1),
    ...(c.note !== undefined && { note: c.note }),
  };
  if (o.errors > 0) {
    say(`  ${c.name}: ${o.errors} errors ${JSON.stringify(o.errorDetail)}`);
    entry.note = [entry.note, `errors ${JSON.stringify(o.errorDetail)}`].filter(Boolean).join('; ');
  }
  say(`  ${Math.round(o.rps)} req/s, p50 ${o.p50Ms.toFixed(2)} ms, p99 ${o.p99Ms.toFixed(2)} ms`);
  entries.push(entry);
  return { entry, outcome: o };
}

async function startServer(script: string, env: NodeJS.ProcessEnv): Promise<{ server: Started; port: number }> {
  const port = await freePort();
  const server = start(process.execPath, [join(ROOT, 'scripts', 'bench', script)], {
    ...env,
    PATH: process.env.PATH,
    PORT: String(port),
  });
  await waitForAnswer(server, port, '/healthz', 15_000);
  return { server, port };
}

// ---------------------------------------------------------------------------------------------------------------
// The parts.

async function ceilings(svc: ServiceSettings): Promise<void> {
  const hello = await startServer('hello-server.ts', {});
  await httpCase({
    name: 'node-hello',
    kind: 'ceiling',
    port: hello.port,
    path: '/',
    script: luaScripts.static(),
    server: hello.server,
    baseline: null,
  });
  await hello.server.stop();

  const pgCase = async (name: string, script: string, prepared: boolean, rows: number | undefined) => {
    say(`${name}: pgbench ${settings.warmupSeconds} s warm-up + ${settings.seconds} s, ${settings.pgClients} clients`);
    await psql(svc.pg, BENCH_DB, 'CHECKPOINT');
    const options = { name, script, clients: settings.pgClients, prepared, dir: tmp };
    await pgbench(svc.pg, { ...options, seconds: settings.warmupSeconds, log: false });
    const m = await measure<PgbenchOutcome>(undefined, () =>
      pgbench(svc.pg, { ...options, seconds: settings.seconds, log: true }),
    );
    const o = m.result;
    say(`  ${Math.round(o.tps)} tps, p50 ${o.p50Ms.toFixed(2)} ms, p99 ${o.p99Ms.toFixed(2)} ms`);
    entries.push({
      name,
      rps: round(o.tps, 1),
      p50_ms: round(o.p50Ms, 3),
      p99_ms: round(o.p99Ms, 3),
      baseline: null,
      ratio: null,
      kind: 'ceiling',
      tool: `pgbench -j1 -c${settings.pgClients} -M ${prepared ? 'prepared' : 'simple'}`,
      ...(rows !== undefined && { rows_per_s: round(o.tps * rows, 0) }),
      requests: o.transactions,
      seconds: round(o.seconds, 2),
      errors: o.failed,
      cpu_cores: {
        load_generator: round(o.cpuSeconds / m.wallSeconds, 2),
        postgres: round(m.postgresCores, 2),
        machine_busy: round(m.machineBusyCores, 2),
      },
    });
  };
  await pgCase('pg-insert-1', pgbenchScripts.insert1, false, 1);
  await pgCase('pg-insert-100', pgbenchScripts.insert100, false, BATCH);
  await pgCase('pg-select-pk', pgbenchScripts.selectPk, true, undefined);

  say(`redis-get: redis-benchmark warm-up, then about ${settings.seconds} s, ${settings.connections} clients`);
  const key = `${redisPrefix}redis-get`;
  await seedKey(svc.redis, key);
  const warm = await redisGet(svc.redis, key, settings.connections, 20_000);
  const total = Math.max(50_000, Math.round(warm.rps * settings.seconds));
  const m = await measure(undefined, () => redisGet(svc.redis, key, settings.connections, total));
  const o = m.result;
  say(`  ${Math.round(o.rps)} req/s, p50 ${o.p50Ms.toFixed(2)} ms, p99 ${o.p99Ms.toFixed(2)} ms`);
  entries.push({
    name: 'redis-get',
    rps: round(o.rps, 1),
    p50_ms: o.p50Ms,
    p99_ms: o.p99Ms,
    baseline: null,
    ratio: null,
    kind: 'ceiling',
    tool: `redis-benchmark -c${settings.connections} (single thread)`,
    requests: o.requests,
    seconds: round(o.seconds, 2),
    cpu_cores: {
      load_generator: round(o.cpuSeconds / m.wallSeconds, 2),
      machine_busy: round(m.machineBusyCores, 2),
    },
  });
}

async function naive(svc: ServiceSettings): Promise<void> {
  const { server, port } = await startServer('naive-server.ts', { DATABASE_URL: benchUrl(svc.pg), POOL_MAX: '10' });
  await psql(svc.pg, BENCH_DB, 'CHECKPOINT');
  const writePhase = nextPhase();
  const post = await httpCase({
    name: 'naive-post',
    kind: 'naive',
    port,
    path: '/data',
    script: luaScripts.postOne(runId, 'bench-naive'),
    server,
    baseline: 'pg-insert-1',
    warmArgs: [nextPhase(), 0],
    args: () => [writePhase, 0],
  });
  const written = writtenRange(post.outcome, settings.connections);
  await httpCase({
    name: 'naive-get',
    kind: 'naive',
    port,
    path: '/',
    script: luaScripts.getSequential(runId),
    server,
    baseline: 'pg-select-pk',
    warmArgs: [writePhase, written.first, written.count, 0],
    args: (warm) => [writePhase, written.first, written.count, warm.requests + 2 * settings.connections],
    note: `ids of naive-post in order (${written.count} rows, wrapping); no cache`,
  });
  await server.stop();
}

async function waitForOutbox(svc: ServiceSettings, limitSeconds: number): Promise<void> {
  const backlog = async () => Number((await psql(svc.pg, BENCH_DB, 'SELECT count(*) FROM outbox')).trim());
  const began = performance.now();
  const initial = await backlog();
  let left = initial;
  while (left > 0 && performance.now() - began < limitSeconds * 1000) {
    await sleep(500);
    left = await backlog();
  }
  const seconds = round((performance.now() - began) / 1000, 1);
  extra.outbox_after_posts = { rows_at_end_of_posts: initial, rows_left: left, waited_seconds: seconds };
  say(`outbox: ${initial} rows waiting after the POST cases; ${left} left after ${seconds} s`);
}

async function service(svc: ServiceSettings): Promise<void> {
  say('building the bundles (node esbuild.config.mjs)');
  await buildBundles(ROOT);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    DATABASE_URL: benchUrl(svc.pg),
    REDIS_URL: svc.redisUrl,
    KAFKA_BROKERS: svc.kafkaBrokers,
    KAFKA_TOPIC,
    REDIS_KEY_PREFIX: redisPrefix,
    HOST: '127.0.0.1',
    LOG_LEVEL: settings.logLevel,
    DRAIN_TIMEOUT_MS: '5000',
  };
  say('migrating the bench database (dist/migrate.mjs)');
  await migrate(ROOT, env);

  const functions: RunningFunction[] = [];
  try {
    say(`starting each bundle ${settings.starts}× to time process start → first answered request`);
    const ingest = await startFunction(ROOT, 'ingest', env, settings.starts);
    functions.push(ingest);
    const query = await startFunction(ROOT, 'query', env, settings.starts);
    functions.push(query);
    for (const f of functions) {
      const each = f.startMs.map((ms, i) => `${Math.round(ms)} ms (${Math.round(f.startCpuMs[i] ?? 0)} ms CPU)`);
      say(`  ${f.name}: ${each.join(', ')}`);
    }
    const idleRss = { ingest: rssMiB(ingest.process.pid), query: rssMiB(query.process.pid) };

    await psql(svc.pg, BENCH_DB, 'CHECKPOINT');
    const onePhase = nextPhase();
    const one = await httpCase({
      name: 'post-one',
      kind: 'service',
      port: ingest.port,
      path: '/data',
      script: luaScripts.postOne(runId, 'bench-one'),
      server: ingest.process,
      baseline: 'naive-post',
      warmArgs: [nextPhase(), 0],
      args: () => [onePhase, 0],
    });
    const batchPhase = nextPhase();
    const batch = await httpCase({
      name: 'post-batch-100',
      kind: 'service',
      port: ingest.port,
      path: '/data',
      script: luaScripts.postBatch(runId, 'bench-batch', BATCH),
      server: ingest.process,
      baseline: 'pg-insert-100',
      warmArgs: [nextPhase(), 0],
      args: () => [batchPhase, 0],
      rowsPerRequest: BATCH,
    });
    await waitForOutbox(svc, 60);
    await psql(svc.pg, BENCH_DB, 'ANALYZE');

    const ones = writtenRange(one.outcome, settings.connections);
    const hotIds = Math.min(HOT_IDS, ones.count);
    await httpCase({
      name: 'get-hot',
      kind: 'service',
      port: query.port,
      path: '/',
      script: luaScripts.getCycle(runId),
      server: query.process,
      baseline: 'node-hello',
      warmArgs: [onePhase, ones.first, hotIds],
      note: `${hotIds} ids of post-one, read over and over (cached after the warm-up)`,
    });

    // The last written id is read here (so it is not cold any more) to prove the id arithmetic right.
    const written = writtenRange(batch.outcome, settings.connections, BATCH);
    const rows = written.count - 1;
    const sample = await probe(query.port, `/data/${benchId(runId, batchPhase, written.first + rows)}`);
    if (sample !== 200) throw new Error(`a record written by post-batch-100 is not readable (status ${sample})`);
    let coldStart = 0;
    const cold = await httpCase({
      name: 'get-cold',
      kind: 'service',
      port: query.port,
      path: '/',
      script: luaScripts.getSequential(runId),
      server: query.process,
      baseline: 'naive-get',
      warmArgs: [batchPhase, written.first, rows, 0],
      args: (warm) => {
        coldStart = warm.requests + 2 * settings.connections;
        return [batchPhase, written.first, rows, coldStart];
      },
    });
    const wrapped = Math.max(0, coldStart + cold.outcome.requests - rows);
    cold.entry.note =
      wrapped === 0
        ? `each id read for the first time (records of post-batch-100 ${coldStart}…${coldStart + cold.outcome.requests})`
        : `only ${rows} unread ids: ${wrapped} reads were repeats (cache hits)`;

    await httpCase({
      name: 'list-page',
      kind: 'service',
      port: query.port,
      path: '/data?source=bench-one&limit=100',
      script: luaScripts.static(),
      server: query.process,
      baseline: 'node-hello',
      note: 'one source, newest 100; the page cache (CACHE_LIST_TTL_SECONDS) serves most of them',
    });

    for (const f of functions) {
      const mine = entries.filter((e) => e.kind === 'service' && (f.name === 'ingest') === e.name.startsWith('post'));
      const sorted = [...f.startMs].sort((a, b) => a - b);
      entries.push({
        name: `start-${f.name}`,
        rps: null,
        p50_ms: round(sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN, 1),
        p99_ms: round(sorted.at(-1) ?? Number.NaN, 1),
        baseline: null,
        ratio: null,
        kind: 'startup',
        samples_ms: f.startMs.map((ms) => round(ms, 1)),
        cpu_ms: f.startCpuMs.map((ms) => round(ms, 0)),
        busy_cores: f.startBusyCores.map((c) => round(c, 2)),
        rss_mib: round(Math.max(...mine.map((e) => e.rss_mib ?? 0)), 1),
        rss_idle_mib: round(idleRss[f.name as 'ingest' | 'query'], 1),
        note: `process start → first 200 on /readyz: p50 = median, p99 = slowest of ${f.startMs.length} starts; rss_mib = peak VmRSS under load`,
      });
    }
  } finally {
    await Promise.all(functions.map((f) => f.process.stop(15_000)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Setup, output and cleanup.

async function ensureTools(): Promise<void> {
  const missing = [...(hasCommand('wrk') ? [] : ['wrk']), ...(hasCommand('redis-benchmark') ? [] : ['redis-tools'])];
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) throw new Error(`missing tools; run: sudo apt-get install -y ${missing.join(' ')}`);
    say(`installing ${missing.join(' ')} from Debian packages`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let result = await run('apt-get', ['install', '-y', '-qq', ...missing], { env, timeoutMs: 300_000 });
    if (result.code !== 0) {
      await run('apt-get', ['update', '-qq'], { env, timeoutMs: 300_000 });
      result = await run('apt-get', ['install', '-y', '-qq', ...missing], { env, timeoutMs: 300_000 });
    }
    if (result.code !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed:\n${result.stderr}`);
  }
  if (!hasCommand(join(PG_BIN, 'pgbench'))) throw new Error(`${PG_BIN}/pgbench not found (PostgreSQL 15 server)`);
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function writeResults(): string {
  const dir = join(ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const base = fullRun ? 'latest' : [...parts].join('-');
  const generators = entries.filter((e) => e.tool?.startsWith('wrk'));
  const genCores = generators.map((e) => e.cpu_cores?.load_generator ?? 0);
  const meta = {
    date: startedAt.toISOString(),
    command: fullRun ? 'npm run bench' : `node scripts/bench.ts ${[...parts].join(' ')}`,
    run_id: runId,
    duration_seconds: round((performance.now() - t0) / 1000, 1),
    machine: { cores: CORES, cpu: cpuModel(), load_average_at_end: loadavg().map((l) => round(l, 2)) },
    settings,
    load_generator: {
      http: `wrk (Debian), 1 thread, ${settings.connections} connections, closed loop`,
      mean_cores: genCores.length > 0 ? round(genCores.reduce((a, b) => a + b, 0) / genCores.length, 2) : null,
      max_cores: genCores.length > 0 ? Math.max(...genCores) : null,
    },
    ...extra,
    targets: verdicts(entries),
  };
  writeFileSync(join(dir, `${base}.json`), `${JSON.stringify(entries, null, 2)}\n`);
  writeFileSync(join(dir, `${base}.meta.json`), `${JSON.stringify(meta, null, 2)}\n`);
  return join('bench-results', `${base}.json`);
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll(10_000);
    const svc = services;
    if (svc !== undefined) {
      const steps: Array<[string, () => Promise<unknown>]> = [
        ['Redis keys', () => deleteKeys(svc.redis, redisPrefix)],
        ['Kafka topic', () => deleteTopic(svc.kafkaBrokers, KAFKA_TOPIC)],
        ['bench database', () => (settings.keepDb ? Promise.resolve() : dropBenchDatabase(svc.pg))],
        ['services', () => servicesDown(ROOT, svc.startedHere)],
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
}

async function abort(reason: string, code: number): Promise<never> {
  say(`${reason}: stopping everything this run started`);
  await cleanup();
  process.exit(code);
}

process.on('SIGINT', () => void abort('interrupted', 130));
process.on('SIGTERM', () => void abort('terminated', 143));
process.on('exit', killAllNow);
// kafkajs 2.2.4 schedules a negative timeout under Node 24 (tulios/kafkajs#1751, harmless): not worth a line.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'TimeoutNegativeWarning') say(`warning: ${warning.message}`);
});
const deadline = setTimeout(
  () => void abort(`deadline of ${settings.deadlineSeconds} s reached`, 124),
  settings.deadlineSeconds * 1000,
);

try {
  await ensureTools();
  say(`run ${runId}: ${[...parts].join(', ')} on ${CORES} cores; services from scripts/services.ts`);
  services = await servicesUp(ROOT);
  await recreateBenchDatabase(services.pg);
  await createBenchTables(services.pg);
  if (parts.has('ceilings')) await ceilings(services);
  if (parts.has('naive')) await naive(services);
  if (parts.has('service')) await service(services);
  computeRatios(entries);
  const file = writeResults();
  const wrkCores = entries.filter((e) => e.tool?.startsWith('wrk')).map((e) => e.cpu_cores?.load_generator ?? 0);
  const lines = [
    '',
    table(entries, CORES),
    '',
    `HTTP load: wrk, 1 thread, ${settings.connections} connections, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per case.`,
    wrkCores.length > 0
      ? `wrk used ${Math.min(...wrkCores).toFixed(2)}–${Math.max(...wrkCores).toFixed(2)} cores of ${CORES} (gen_cpu = its share of all ${CORES} cores).`
      : '',
    'srv_us/req: CPU of the serving process per request; rss_MiB: its peak VmRSS; busy: cores busy machine-wide',
    '(everything, other users included) during the measured interval.',
    '',
    'Process start → first answer (own CPU; cores busy machine-wide meanwhile):',
    startupLines(entries),
    '',
    'Targets (issue 5):',
    verdictLines(verdicts(entries)),
    '',
    `Written ${file} (and its .meta.json); ${((performance.now() - t0) / 1000).toFixed(0)} s in all.`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
} catch (error) {
  if (cleaning === undefined) {
    say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  }
} finally {
  clearTimeout(deadline);
  await cleanup();
}
