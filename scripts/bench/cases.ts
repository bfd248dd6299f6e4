/**
 * The cases of `npm run bench`, in three parts, each case measured the same way (`measure` around a warm-up-less
 * window after a discarded warm-up run) and each able to run alone with what it needs before it, which is how
 * `npm run bench:profile -- <case>` runs one of them under `--cpu-prof`:
 *
 * - ceilings: bare node:http (`node-hello`), PostgreSQL single-row INSERT, 100-row INSERT and primary-key SELECT
 *   (pgbench), Redis GET (redis-benchmark);
 * - naive: scripts/bench/naive-server.ts, one statement per request (`naive-post` at 32 and 128 connections,
 *   `naive-get`, `naive-list`);
 * - service: the bundles (`post-one` at 32 and 128 connections, `post-batch-100`, `get-hot`, `get-cold`,
 *   `list-page`), and each bundle's start → first answer and peak RSS.
 */
import { join } from 'node:path';
import {
  ensureCommand,
  freePort,
  httpStatus,
  ROOT,
  run,
  runOk,
  type Started,
  sleep,
  startProcess,
  waitForHttp,
} from '../processes.ts';
import { duration } from '../progress.ts';
import { type Cost, GROUPS, measure, trackCpu } from './cost.ts';
import { type BenchContext, intEnv, type StartedBundle, say } from './lifecycle.ts';
import { pgbench, pgbenchScripts, psql } from './pg.ts';
import { type Entry, type Kind, round } from './report.ts';
import { benchId, luaScripts, type WrkOutcome, writtenRange, wrk } from './wrk.ts';

export const settings = {
  connections: intEnv('BENCH_CONNECTIONS', 32),
  highConnections: intEnv('BENCH_HIGH_CONNECTIONS', 128),
  seconds: intEnv('BENCH_SECONDS', 8),
  warmupSeconds: intEnv('BENCH_WARMUP_SECONDS', 2),
  pgClients: intEnv('BENCH_PG_CLIENTS', 32),
  starts: intEnv('BENCH_STARTS', 5),
};
const BATCH = 100;
const HOT_IDS = 100;

/** What the service under a case runs as (`nodeArgs` go before the script, e.g. --cpu-prof for one of them). */
export interface RunOptions {
  /** Run only these cases and what they need (default: all). */
  readonly only?: ReadonlySet<string>;
  readonly nodeArgs?: (server: 'hello' | 'naive' | 'ingest' | 'query') => readonly string[];
  /** Called with each measured window, in µs of the monotonic clock (as a .cpuprofile's timestamps are). */
  readonly onWindow?: (name: string, fromUs: number, toUs: number) => void;
}

export interface Bench {
  readonly ctx: BenchContext;
  readonly entries: Entry[];
  readonly options: RunOptions;
  phase: number;
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** Fills an entry's cost fields from a measured window of `requests` requests. */
function costFields(m: Cost, requests: number, generatorSeconds: number): Partial<Entry> {
  const per = (seconds: number) => (requests > 0 ? round((seconds / requests) * 1e6, 1) : 0);
  return {
    cpu_us_per_request: {
      ...(Object.fromEntries(GROUPS.map((g) => [g, per(m.cpuSeconds[g])])) as Record<(typeof GROUPS)[number], number>),
      machine_share: per(m.machineShareSeconds),
      load_generator: per(generatorSeconds),
    },
    busy_cores: round(m.busyCores, 2),
  };
}

export interface HttpCase {
  readonly name: string;
  readonly kind: Kind;
  readonly url: string;
  readonly script: string;
  readonly server: Started;
  readonly baseline: string | null;
  readonly connections?: number;
  /** wrk script arguments of the warm-up; of the measured run, from the warm-up's outcome (default: the same). */
  readonly warmArgs?: readonly number[];
  readonly args?: (warm: WrkOutcome) => readonly number[];
  readonly rowsPerRequest?: number;
  /** Keeps the window open after the load until this resolves (the relay publishing what was written). */
  readonly settle?: () => Promise<void>;
  readonly note?: string;
}

/** A warm-up run (discarded), then the measured one; the entry is added to `b.entries`. */
export async function httpCase(b: Bench, c: HttpCase): Promise<WrkOutcome> {
  const connections = c.connections ?? settings.connections;
  // The service's cases carry the bench's token; the baselines do no access control.
  const headers = c.kind === 'service' ? b.ctx.requestHeaders : {};
  const common = { url: c.url, script: c.script, connections, dir: b.ctx.tmp, headers };
  say(`${c.name}: ${settings.warmupSeconds} s warm-up + ${settings.seconds} s, ${connections} connections`);
  const warm = await wrk({
    ...common,
    name: `${c.name}-warm`,
    seconds: settings.warmupSeconds,
    args: c.warmArgs ?? [],
  });
  const from = nowUs();
  let loadEnd = 0;
  const m = await measure([c.server.pid], async () => {
    const outcome = await wrk({
      ...common,
      name: c.name,
      seconds: settings.seconds,
      args: c.args?.(warm) ?? c.warmArgs ?? [],
    });
    loadEnd = performance.now();
    await c.settle?.();
    return outcome;
  });
  b.options.onWindow?.(c.name, from, nowUs());
  const o = m.result;
  b.entries.push({
    name: c.name,
    kind: c.kind,
    tool: 'wrk -t1',
    connections,
    rps: round(o.rps, 1),
    p50_ms: round(o.p50Ms, 3),
    p99_ms: round(o.p99Ms, 3),
    latency_ms: o.distributionMs.map(([p, ms]) => [p, round(ms, 3)] as const),
    ...(c.rowsPerRequest !== undefined && { rows_per_s: round(o.rps * c.rowsPerRequest, 0) }),
    requests: o.requests,
    seconds: round(o.seconds, 2),
    errors: o.errors,
    baseline: c.baseline,
    ratio: null,
    ...costFields(m, o.requests, o.cpuSeconds),
    ...(c.settle !== undefined && { drain_seconds: round((performance.now() - loadEnd) / 1000, 1) }),
    rss_mib: round(m.peakRssMiB, 1),
    ...((c.note !== undefined || o.errors > 0) && {
      note: [c.note, o.errors > 0 && `errors ${JSON.stringify(o.errorDetail)}`].filter(Boolean).join('; '),
    }),
  });
  say(
    `  ${Math.round(o.rps)} req/s, p99 ${o.p99Ms.toFixed(1)} ms, ${b.entries.at(-1)?.cpu_us_per_request?.server} µs server CPU/request`,
  );
  return o;
}

/** Runs `steps` in order, skipping those that neither were asked for nor are needed by one that was. */
async function runSteps(
  b: Bench,
  steps: ReadonlyArray<{ name: string; needs?: readonly string[]; run: () => Promise<unknown> }>,
) {
  const wanted = new Set(b.options.only ?? steps.map((s) => s.name));
  for (const step of [...steps].reverse()) if (wanted.has(step.name)) for (const n of step.needs ?? []) wanted.add(n);
  const chosen = steps.filter((step) => wanted.has(step.name));
  const began = performance.now();
  for (const [index, step] of chosen.entries()) {
    // The time left from the steps so far (each is warm-up + window + its drain); the first step has no estimate.
    const perStep = index === 0 ? undefined : (performance.now() - began) / 1000 / index;
    const left = perStep === undefined ? '' : `, ~${duration(perStep * (chosen.length - index))} left in this part`;
    say(`[${index + 1}/${chosen.length}] ${step.name}${left}`);
    await step.run();
  }
}

async function startServer(b: Bench, script: 'hello' | 'naive', env: NodeJS.ProcessEnv) {
  const port = await freePort();
  const file = join(ROOT, 'scripts', 'bench', `${script}-server.ts`);
  const server = startProcess(process.execPath, [...(b.options.nodeArgs?.(script) ?? []), file], {
    env: { PATH: process.env.PATH, ...env, PORT: String(port) },
  });
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, { process: server });
  return { server, url: `http://127.0.0.1:${port}` };
}

export async function ceilings(b: Bench): Promise<void> {
  const { ctx } = b;
  await runSteps(b, [
    {
      name: 'node-hello',
      run: async () => {
        const { server, url } = await startServer(b, 'hello', {});
        await httpCase(b, {
          name: 'node-hello',
          kind: 'ceiling',
          url,
          script: luaScripts.static(),
          server,
          baseline: null,
        });
        await server.stop();
      },
    },
    ...(
      [
        ['pg-insert-1', pgbenchScripts.insert1, false, 1],
        ['pg-insert-100', pgbenchScripts.insert100, false, BATCH],
        ['pg-select-pk', pgbenchScripts.selectPk, true, undefined],
      ] as const
    ).map(([name, script, prepared, rows]) => ({
      name,
      run: async () => {
        say(
          `${name}: pgbench ${settings.warmupSeconds} s warm-up + ${settings.seconds} s, ${settings.pgClients} clients`,
        );
        await psql(ctx.pg, ctx.database, 'CHECKPOINT');
        const options = { name, script, clients: settings.pgClients, prepared, dir: ctx.tmp };
        await pgbench(ctx.pg, ctx.database, { ...options, seconds: settings.warmupSeconds, log: false });
        const m = await measure([], () =>
          pgbench(ctx.pg, ctx.database, { ...options, seconds: settings.seconds, log: true }),
        );
        const o = m.result;
        b.entries.push({
          name,
          kind: 'ceiling',
          tool: `pgbench -j1 -M ${prepared ? 'prepared' : 'simple'}`,
          connections: settings.pgClients,
          rps: round(o.rps, 1),
          p50_ms: round(o.p50Ms, 3),
          p99_ms: round(o.p99Ms, 3),
          ...(rows !== undefined && { rows_per_s: round(o.rps * rows, 0) }),
          requests: o.requests,
          seconds: round(o.seconds, 2),
          errors: o.errors,
          baseline: null,
          ratio: null,
          ...costFields(m, o.requests, o.cpuSeconds),
        });
        say(`  ${Math.round(o.rps)} tps, p99 ${o.p99Ms.toFixed(1)} ms`);
      },
    })),
    { name: 'redis-get', run: () => redisGet(b) },
  ]);
}

/** redis-benchmark GET of a record-sized value, sized to last about BENCH_SECONDS after a warm-up. */
async function redisGet(b: Bench): Promise<void> {
  const url = new URL(b.ctx.functionEnv().REDIS_URL ?? '');
  const target = ['-h', url.hostname, '-p', url.port];
  const key = `${b.ctx.redisPrefix}redis-get`;
  const value = JSON.stringify({
    id: benchId('00000000', 0, 0),
    source: 'bench-one',
    type: 'reading',
    payload: { seq: 1 },
  });
  await runOk(ensureCommand('redis-cli', 'redis-tools'), [...target, 'SET', key, value, 'EX', '3600'], {
    timeoutMs: 10_000,
  });
  const bench = async (requests: number) => {
    const cpu = trackCpu();
    const args = [...target, '-c', String(settings.connections), '-n', String(requests), '--csv', 'GET', key];
    const result = await run(ensureCommand('redis-benchmark', 'redis-tools'), args, {
      timeoutMs: 120_000,
      onSpawn: cpu.onSpawn,
    });
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    const line = result.stdout
      .split('\n')
      .find((l) => l.startsWith('"GET'))
      ?.replaceAll('"', '')
      .split(',')
      .map(Number);
    if (line === undefined) throw new Error(`redis-benchmark failed:\n${result.stdout}${result.stderr}`);
    return { rps: line[1] ?? 0, p50: line[4] ?? 0, p99: line[6] ?? 0, cpu: cpu.seconds() };
  };
  say(`redis-get: redis-benchmark warm-up, then about ${settings.seconds} s, ${settings.connections} clients`);
  const warm = await bench(20_000);
  const requests = Math.max(50_000, Math.round(warm.rps * settings.seconds));
  const m = await measure([], () => bench(requests));
  b.entries.push({
    name: 'redis-get',
    kind: 'ceiling',
    tool: 'redis-benchmark',
    connections: settings.connections,
    rps: round(m.result.rps, 1),
    p50_ms: m.result.p50,
    p99_ms: m.result.p99,
    requests,
    seconds: round(m.wallSeconds, 2),
    baseline: null,
    ratio: null,
    ...costFields(m, requests, m.result.cpu),
  });
}

export async function naive(b: Bench): Promise<void> {
  const { ctx } = b;
  const { server, url } = await startServer(b, 'naive', { DATABASE_URL: ctx.databaseUrl, POOL_MAX: '10' });
  const write = nextPhase(b);
  let posted: WrkOutcome | undefined;
  const written = () => writtenRange(posted as WrkOutcome, settings.connections);
  await runSteps(b, [
    {
      name: 'naive-post',
      run: async () => {
        await psql(ctx.pg, ctx.database, 'CHECKPOINT');
        posted = await httpCase(b, {
          name: 'naive-post',
          kind: 'naive',
          url: `${url}/data`,
          script: luaScripts.postOne(ctx.runId, 'bench-naive'),
          server,
          baseline: 'pg-insert-1',
          warmArgs: [nextPhase(b)],
          args: () => [write],
        });
      },
    },
    {
      name: 'naive-post-128',
      run: () =>
        httpCase(b, {
          name: 'naive-post-128',
          kind: 'naive',
          url: `${url}/data`,
          script: luaScripts.postOne(ctx.runId, 'bench-naive'),
          server,
          connections: settings.highConnections,
          baseline: 'pg-insert-1',
          warmArgs: [nextPhase(b)],
          args: () => [nextPhase(b)],
        }),
    },
    {
      name: 'naive-get',
      needs: ['naive-post'],
      run: () =>
        httpCase(b, {
          name: 'naive-get',
          kind: 'naive',
          url,
          script: luaScripts.getIds(ctx.runId),
          server,
          baseline: 'pg-select-pk',
          warmArgs: [write, written().first, written().count, 0],
          args: (warm) => [write, written().first, written().count, warm.requests + 2 * settings.connections],
          note: 'ids of naive-post in order (wrapping); no cache',
        }),
    },
    {
      name: 'naive-list',
      needs: ['naive-post'],
      run: () =>
        httpCase(b, {
          name: 'naive-list',
          kind: 'naive',
          url: `${url}/data?source=bench-naive&limit=100`,
          script: luaScripts.static(),
          server,
          baseline: 'pg-select-pk',
          note: 'the keyset SELECT of a first list page per request; no cache',
        }),
    },
  ]);
  await server.stop();
}

export const nextPhase = (b: Bench) => ++b.phase;

/** Waits (bounded) until the relay inside ingest has published every outbox row. */
async function outboxDrained(b: Bench, limitSeconds = 60): Promise<void> {
  const backlog = () => psql(b.ctx.pg, b.ctx.database, 'SELECT count(*) FROM outbox').then(Number, () => 0);
  const deadline = performance.now() + limitSeconds * 1000;
  while ((await backlog()) > 0 && performance.now() < deadline) await sleep(100);
}

export async function service(b: Bench): Promise<void> {
  const { ctx } = b;
  const bundles: StartedBundle[] = [];
  const start = async (name: 'ingest' | 'query') => {
    const starts = b.options.only === undefined ? settings.starts : 1;
    say(`starting ${name} ${starts}× (spawn → first 200 from /readyz)`);
    const started = await ctx.startBundle(name, ctx.functionEnv(), {
      starts,
      nodeArgs: b.options.nodeArgs?.(name) ?? [],
    });
    bundles.push(started);
    return started;
  };
  try {
    const ingest = await start('ingest');
    const query = await start('query');
    const one = nextPhase(b);
    const batch = nextPhase(b);
    const outcomes: Record<string, WrkOutcome> = {};
    const post = (name: string, phase: number, script: string, extra: Partial<HttpCase>) => async () => {
      await psql(ctx.pg, ctx.database, 'CHECKPOINT');
      outcomes[name] = await httpCase(b, {
        name,
        kind: 'service',
        url: `${ingest.url}/data`,
        script,
        server: ingest.process,
        baseline: 'naive-post',
        warmArgs: [nextPhase(b)],
        args: () => [phase],
        settle: () => outboxDrained(b),
        ...extra,
      });
    };
    const ones = () => writtenRange(outcomes['post-one'] as WrkOutcome, settings.connections);
    await runSteps(b, [
      { name: 'post-one', run: post('post-one', one, luaScripts.postOne(ctx.runId, 'bench-one'), {}) },
      {
        name: 'post-one-128',
        run: post('post-one-128', nextPhase(b), luaScripts.postOne(ctx.runId, 'bench-one'), {
          connections: settings.highConnections,
          baseline: 'naive-post-128',
        }),
      },
      {
        name: 'post-batch-100',
        run: post('post-batch-100', batch, luaScripts.postBatch(ctx.runId, 'bench-batch', BATCH), {
          baseline: 'pg-insert-100',
          rowsPerRequest: BATCH,
        }),
      },
      {
        name: 'get-hot',
        needs: ['post-one'],
        run: async () => {
          await psql(ctx.pg, ctx.database, 'ANALYZE');
          const ids = Math.min(HOT_IDS, ones().count);
          await httpCase(b, {
            name: 'get-hot',
            kind: 'service',
            url: query.url,
            script: luaScripts.getCycle(ctx.runId),
            server: query.process,
            baseline: 'node-hello',
            warmArgs: [one, ones().first, ids],
            note: `${ids} ids of post-one, read over and over (cached after the warm-up)`,
          });
        },
      },
      {
        name: 'get-cold',
        needs: ['post-batch-100'],
        run: async () => {
          const { first, count } = writtenRange(outcomes['post-batch-100'] as WrkOutcome, settings.connections, BATCH);
          // The last written id is read first (so it is not cold any more) to prove the id arithmetic right.
          const last = `${query.url}/data/${benchId(ctx.runId, batch, first + count - 1)}`;
          const status = await httpStatus(last, 5_000, ctx.requestHeaders);
          if (status !== 200) throw new Error(`a record written by post-batch-100 is not readable (status ${status})`);
          let from = 0;
          const o = await httpCase(b, {
            name: 'get-cold',
            kind: 'service',
            url: query.url,
            script: luaScripts.getIds(ctx.runId),
            server: query.process,
            baseline: 'naive-get',
            warmArgs: [batch, first, count - 1, 0],
            args: (warm) => {
              from = warm.requests + 2 * settings.connections;
              return [batch, first, count - 1, from];
            },
          });
          const repeats = Math.max(0, from + o.requests - (count - 1));
          const entry = b.entries.at(-1) as Entry;
          entry.note =
            repeats === 0 ? 'each id read for the first time' : `${repeats} reads were repeats (ids ran out)`;
        },
      },
      {
        name: 'list-page',
        needs: ['post-one'],
        run: () =>
          httpCase(b, {
            name: 'list-page',
            kind: 'service',
            url: `${query.url}/data?source=bench-one&limit=100`,
            script: luaScripts.static(),
            server: query.process,
            baseline: 'naive-list',
            note: 'one source, newest 100; the page cache serves most of them',
          }),
      },
    ]);
    for (const f of bundles) {
      const mine = b.entries.filter((e) => e.kind === 'service' && e.name.startsWith('post') === (f.name === 'ingest'));
      const sorted = [...f.startMs].sort((x, y) => x - y);
      b.entries.push({
        name: `start-${f.name}`,
        kind: 'startup',
        rps: null,
        p50_ms: round(sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN, 1),
        p99_ms: round(sorted.at(-1) ?? Number.NaN, 1),
        baseline: null,
        ratio: null,
        samples_ms: f.startMs.map((ms) => round(ms, 1)),
        cpu_ms: f.startCpuMs.map((ms) => round(ms, 0)),
        rss_mib: round(Math.max(f.idleRssMiB, ...mine.map((e) => e.rss_mib ?? 0)), 1),
        rss_idle_mib: round(f.idleRssMiB, 1),
        note: 'spawn → first 200 on /readyz: p50 = median, p99 = slowest start; rss_mib = peak VmRSS over its cases',
      });
    }
  } finally {
    await Promise.all(bundles.map((f) => f.process.stop(25_000)));
  }
}
