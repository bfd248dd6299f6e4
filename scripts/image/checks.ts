/**
 * The image run as pods run it, and what it did: ingest and query from the image under the manifests' limits
 * against the services on loopback (scripts/image/containers.ts says how), with
 * - the migration Job's entry (dist/migrate.mjs) run once from the image first;
 * - probes, a write through ingest, its read through query, and its event relayed to Kafka from the container;
 * - keep-alive: one connection per function left idle past queue-proxy's 90 s and then reused. The idle time is not
 *   waited for in vain: the start-time runs and the load run happen meanwhile, on other connections;
 * - start to first answered /readyz, a median of several starts each: under the pod's limits, in a container
 *   without the CPU limit, and the same bundle as a host process (what the container itself costs);
 * - a short wrk run per function, with the cgroup's memory sampled throughout;
 * - SIGTERM through the runtime with requests in flight: not ready, every request answered, exit 0 within the
 *   grace period less queue-proxy's drain.
 * Every container is removed at the end, and podman kills any that outlives `maxSeconds` on its own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '../processes.ts';
import { DIST_DIR, log, median, run, sleep } from './common.ts';
import {
  type Container,
  type CpuThrottling,
  type FunctionName,
  knativeSettings,
  type MemorySample,
  podLimits,
  startContainer,
} from './containers.ts';
import { connectOutcome, fetchOnce, RawConnection, type Reply, requestText, splitRequest } from './http.ts';
import { type LoadRun, runWrk } from './load.ts';

/** queue-proxy closes upstream keep-alive connections idle this long; the function must keep them longer. */
export const QUEUE_PROXY_IDLE_MS = 90_000;
/** queue-proxy's drain before the user container gets SIGTERM (knative/README.md). */
export const QUEUE_PROXY_DRAIN_MS = 30_000;
const IN_FLIGHT = 5;
const FUNCTIONS: readonly FunctionName[] = ['ingest', 'query'];

export interface Services {
  readonly DATABASE_URL: string;
  readonly REDIS_URL: string;
  readonly KAFKA_BROKERS: string;
}

export interface CheckOptions {
  readonly image: string;
  readonly services: Services;
  /**
   * The keep-alive connections stay idle at least this long (default 91 s: past queue-proxy's 90 s). The start
   * runs and the load run fill the time, so a shorter value only saves the waiting after them.
   */
  readonly idleMs?: number;
  readonly loadSeconds?: number;
  readonly loadConnections?: number;
  /** Starts per function and mode for the start-time medians. */
  readonly startRuns?: number;
}

export type StartMode = 'pod limits' | 'container, no CPU limit' | 'host process';

export interface StartTimes {
  readonly fn: FunctionName;
  readonly mode: StartMode;
  /** From spawning `podman run` (or node) to the first 200 from /readyz, each run. */
  readonly toReadyMs: readonly number[];
  /** From the container's start (podman's StartedAt) to the function's "ready to serve" line, each run. */
  readonly insideMs: readonly number[];
}

export interface FunctionReport {
  readonly port: number;
  readonly limits: ReturnType<typeof podLimits>;
  readonly firstReadyMs: number;
  readonly probes: { readonly healthz: number; readonly readyz: number; readonly metrics: number };
  readonly dependencies: Readonly<Record<string, number>>;
  readonly keepAlive: {
    readonly announcedSeconds: number;
    readonly closedWhileIdle: boolean;
    readonly reusedStatus: number;
  };
  readonly memory: {
    readonly limitBytes: number;
    readonly cgroupPeakBytes: number | undefined;
    readonly sampledPeakWorkingSetBytes: number;
    readonly sampledPeakAnonBytes: number;
    readonly nodePeakRssBytes: number | undefined;
  };
  /** CFS bandwidth control over the container's life: how often the CPU limit stopped it, and for how long. */
  readonly cpu: CpuThrottling | undefined;
  /** The first error-level log lines of the long-running container (pino level ≥ 50), to say why a check failed. */
  readonly errors: readonly string[];
  readonly drain: {
    readonly drainingLog: Record<string, unknown>;
    readonly newConnection: string;
    readonly readiness: { readonly status: number; readonly body: string };
    readonly runningAfterSignal: boolean;
    readonly responses: readonly number[];
    readonly exitCode: number | null;
    readonly exitedAfterMs: number;
    readonly budgetMs: number;
    readonly drainTimeoutMs: number;
    readonly stoppedLog: Record<string, unknown> | undefined;
  };
}

export interface ImageReport {
  readonly image: string;
  readonly run: string;
  readonly nodeOptions: string;
  readonly migrate: { readonly code: number | null; readonly ms: number; readonly messages: readonly string[] };
  readonly roundTrip: { readonly created: number; readonly read: number; readonly eventsPublished: number };
  /** The idle time asked for, and the one the connections really had. */
  readonly idleRequestedMs: number;
  readonly idleMs: number;
  readonly functions: Readonly<Record<FunctionName, FunctionReport>>;
  readonly starts: readonly StartTimes[];
  readonly load: readonly LoadRun[];
  readonly durationMs: number;
}

function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/** Polls /readyz on fresh connections until it answers 200; rejects when `exited` settles first or on timeout. */
async function untilReady(port: number, exited: Promise<unknown>, timeoutMs = 30_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  let last = 'no answer';
  while (performance.now() < deadline) {
    if (gone) throw new Error(`exited before /readyz answered 200 (last: ${last})`);
    try {
      const reply = await fetchOnce(port, '/readyz', { timeoutMs: 1_000 });
      if (reply.status === 200) return performance.now();
      last = `status ${reply.status}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(10);
  }
  throw new Error(`127.0.0.1:${port}/readyz not 200 within ${timeoutMs} ms (last: ${last})`);
}

/** `name{labels} value` lines of a Prometheus text body, summed by metric name and first label value. */
function metricValues(body: string, metric: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const match of body.matchAll(new RegExp(`^${metric}(?:\\{[^"]*"([^"]*)"[^}]*\\})? ([\\d.e+-]+)$`, 'gm'))) {
    const key = match[1] ?? '';
    values[key] = (values[key] ?? 0) + Number(match[2]);
  }
  return values;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function runImageChecks(options: CheckOptions): Promise<ImageReport> {
  const begun = performance.now();
  const { image, services } = options;
  const idleMs = options.idleMs ?? QUEUE_PROXY_IDLE_MS + 1_000;
  const loadSeconds = options.loadSeconds ?? 10;
  const startRuns = options.startRuns ?? 5;
  if (!/test/i.test(databaseName(services.DATABASE_URL))) {
    throw new Error(`refusing to write to database "${databaseName(services.DATABASE_URL)}": its name must say test`);
  }
  const runId = randomUUID().slice(0, 8);
  const settings = knativeSettings();
  const drainTimeoutMs = Number(settings.DRAIN_TIMEOUT_MS);
  const imageEnv = JSON.parse(
    run('podman', ['image', 'inspect', '--format', '{{json .Config.Env}}', image]),
  ) as string[];
  const nodeOptions = imageEnv.find((entry) => entry.startsWith('NODE_OPTIONS='))?.slice('NODE_OPTIONS='.length) ?? '';
  const secret = { ...services };
  const maxSeconds = Math.ceil(idleMs / 1000) + loadSeconds * 2 + 300;

  const containers: Container[] = [];
  const hostProcesses: ChildProcess[] = [];
  const envFor = (port: number, service: string): Record<string, string> => ({
    // The runtime contract is checked here, not access control (the integration tests do that): no issuer.
    AUTH_MODE: 'none',
    CURSOR_SECRET: 'image-check-cursor-secret-0123',
    ...settings,
    ...secret,
    PORT: String(port),
    // Host networking: 127.0.0.1 is the loopback-only counterpart of a pod's own network namespace.
    HOST: '127.0.0.1',
    K_SERVICE: service,
    K_CONFIGURATION: service,
    K_REVISION: `${service}-00001`,
  });
  const start = (fn: FunctionName, port: number, name: string, limited = true): Container => {
    const limits = podLimits(fn);
    const container = startContainer({
      image,
      name: `ds-image-${runId}-${name}`,
      args: [`dist/${fn}.mjs`],
      env: envFor(port, `image-${fn}-${runId}`),
      limits: limited ? { memory: limits.memory, cpus: limits.cpus } : { memory: limits.memory },
      maxSeconds,
    });
    containers.push(container);
    return container;
  };

  try {
    // The migration Job's entry, from the image. The suite's global setup may have migrated already: then it
    // proves the entry runs and finds the schema up to date.
    const migrateStarted = performance.now();
    const migrate = startContainer({
      image,
      name: `ds-image-${runId}-migrate`,
      args: ['dist/migrate.mjs'],
      env: { ...settings, ...secret },
      limits: { memory: podLimits('ingest').memory, cpus: podLimits('ingest').cpus },
      maxSeconds: 120,
    });
    containers.push(migrate);
    const migrated = await withTimeout(migrate.exited, 120_000, 'dist/migrate.mjs');
    const migrateReport = {
      code: migrated.code,
      ms: performance.now() - migrateStarted,
      messages: migrate.logLines().map((line) => String(line.msg)),
    };
    if (migrated.code !== 0)
      throw new Error(`dist/migrate.mjs from the image exited ${migrated.code}:\n${migrate.output()}`);
    log(`migrate: exit 0 in ${migrateReport.ms.toFixed(0)} ms (${migrateReport.messages.join('; ')})`);

    const main: Partial<Record<FunctionName, { container: Container; port: number; firstReadyMs: number }>> = {};
    for (const fn of FUNCTIONS) {
      const port = await freePort();
      const container = start(fn, port, fn);
      const readyAt = await untilReady(port, container.exited).catch((error: unknown) => {
        throw new Error(`${fn} from the image: ${String(error)}\n${container.output().slice(-3000)}`);
      });
      main[fn] = { container, port, firstReadyMs: readyAt - container.spawnedAt };
      log(`${fn}: podman run → /readyz 200 in ${(readyAt - container.spawnedAt).toFixed(0)} ms (127.0.0.1:${port})`);
    }
    const ingest = main.ingest;
    const query = main.query;
    if (!ingest || !query) throw new Error('functions did not start');

    const probes: Partial<Record<FunctionName, FunctionReport['probes']>> = {};
    const dependencies: Partial<Record<FunctionName, Record<string, number>>> = {};
    for (const fn of FUNCTIONS) {
      const port = main[fn]?.port ?? 0;
      const [healthz, readyz, metrics] = await Promise.all(
        ['/healthz', '/readyz', '/metrics'].map((path) => fetchOnce(port, path)),
      );
      probes[fn] = { healthz: healthz?.status ?? 0, readyz: readyz?.status ?? 0, metrics: metrics?.status ?? 0 };
      dependencies[fn] = metricValues(metrics?.body ?? '', 'data_service_dependency_up');
    }

    const source = `image.check.${runId}`;
    const created = await fetchOnce(ingest.port, '/data', {
      method: 'POST',
      body: JSON.stringify({ source, type: 'reading', payload: { from: 'image' } }),
    });
    const id = (JSON.parse(created.body) as { records?: Array<{ id: string }> }).records?.[0]?.id ?? '';
    const read = await fetchOnce(query.port, `/data/${id}`);
    let eventsPublished = 0;
    for (const deadline = performance.now() + 15_000; performance.now() < deadline; await sleep(200)) {
      const metrics = await fetchOnce(ingest.port, '/metrics');
      eventsPublished = Object.values(metricValues(metrics.body, 'data_service_events_published_total')).reduce(
        (a, b) => a + b,
        0,
      );
      if (eventsPublished > 0) break;
    }
    const roundTrip = { created: created.status, read: read.status, eventsPublished };
    log(`round trip: POST ${created.status}, GET ${read.status}, events published to Kafka ${eventsPublished}`);

    const idle: Partial<Record<FunctionName, { connection: RawConnection; announcedSeconds: number }>> = {};
    for (const fn of FUNCTIONS) {
      const connection = await RawConnection.open(main[fn]?.port ?? 0);
      connection.write(requestText('GET', '/healthz'));
      const first = await connection.response();
      idle[fn] = {
        connection,
        announcedSeconds: Number(/timeout=(\d+)/.exec(first.headers['keep-alive'] ?? '')?.[1] ?? Number.NaN),
      };
    }
    const idleFrom = performance.now();
    log(`keep-alive: one connection per function idle from now for ${(idleMs / 1000).toFixed(0)} s`);

    const peaks: Record<FunctionName, { workingSet: number; anon: number }> = {
      ingest: { workingSet: 0, anon: 0 },
      query: { workingSet: 0, anon: 0 },
    };
    const sampleMemory = () => {
      for (const fn of FUNCTIONS) {
        let sample: MemorySample | undefined;
        try {
          sample = main[fn]?.container.memory();
        } catch {
          sample = undefined;
        }
        if (sample) {
          peaks[fn].workingSet = Math.max(peaks[fn].workingSet, sample.workingSetBytes);
          peaks[fn].anon = Math.max(peaks[fn].anon, sample.anonBytes);
        }
      }
    };
    sampleMemory();
    const sampler = setInterval(sampleMemory, 250);

    const starts: StartTimes[] = [];
    try {
      const modes: StartMode[] = ['pod limits', 'container, no CPU limit', 'host process'];
      for (const mode of modes) {
        for (const fn of FUNCTIONS) {
          const toReadyMs: number[] = [];
          const insideMs: number[] = [];
          for (let i = 0; i < startRuns; i++) {
            const port = await freePort();
            if (mode === 'host process') {
              const startedAt = performance.now();
              const child = spawn(process.execPath, [join(DIST_DIR, `${fn}.mjs`)], {
                env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: nodeOptions, ...envFor(port, `image-host-${fn}`) },
                stdio: 'ignore',
              });
              hostProcesses.push(child);
              const exited = new Promise((resolve) => child.once('close', resolve));
              toReadyMs.push((await untilReady(port, exited)) - startedAt);
              child.kill('SIGTERM');
              await withTimeout(exited, drainTimeoutMs + 5_000, `${fn} host process exit`);
            } else {
              const container = start(
                fn,
                port,
                `${fn}-start-${mode === 'pod limits' ? 'pod' : 'nocpu'}-${i}`,
                mode === 'pod limits',
              );
              const readyAt = await untilReady(port, container.exited);
              toReadyMs.push(readyAt - container.spawnedAt);
              const ready = await container.waitForLog('ready to serve', 5_000);
              insideMs.push(Date.parse(String(ready.time)) - container.state().startedAtMs);
              container.signal('SIGTERM');
              await withTimeout(container.exited, drainTimeoutMs + 5_000, `${container.name} exit`);
            }
          }
          starts.push({ fn, mode, toReadyMs, insideMs });
          log(
            `start ${fn} (${mode}): to first /readyz 200 median ${median(toReadyMs).toFixed(0)} ms of ${startRuns}` +
              (insideMs.length > 0
                ? `; container start → "ready to serve" median ${median(insideMs).toFixed(0)} ms`
                : ''),
          );
        }
      }

      const load: LoadRun[] = [];
      const connections = options.loadConnections ?? 16;
      load.push(
        await runWrk({
          label: `ingest POST /data (${connections} connections, ${loadSeconds} s)`,
          url: `http://127.0.0.1:${ingest.port}/data`,
          seconds: loadSeconds,
          connections,
          body: JSON.stringify({ source: `image.load.${runId}`, type: 'reading', payload: { n: 1 } }),
        }),
      );
      load.push(
        await runWrk({
          label: `query GET /data/{id} (${connections} connections, ${loadSeconds} s)`,
          url: `http://127.0.0.1:${query.port}/data/${id}`,
          seconds: loadSeconds,
          connections,
        }),
      );
      for (const result of load) {
        log(
          `load ${result.label}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms, non-2xx ${result.non2xx}, socket errors ${result.socketErrors}`,
        );
      }

      const idleLeft = idleMs - (performance.now() - idleFrom);
      if (idleLeft > 0) {
        log(`keep-alive: waiting ${(idleLeft / 1000).toFixed(0)} s more before reusing the idle connections`);
        // A timer may fire a fraction of a millisecond early by performance.now(): a little margin past the target.
        await sleep(idleLeft + 25);
      }
      const idleFor = performance.now() - idleFrom;
      const reused: Partial<Record<FunctionName, { closedWhileIdle: boolean; status: number }>> = {};
      const ingestIdle = idle.ingest?.connection;
      const queryIdle = idle.query?.connection;
      reused.ingest = { closedWhileIdle: ingestIdle?.closedAt !== undefined, status: 0 };
      reused.query = { closedWhileIdle: queryIdle?.closedAt !== undefined, status: 0 };
      if (ingestIdle && !reused.ingest.closedWhileIdle) {
        const body = JSON.stringify({ source, type: 'reading', payload: { idle_ms: Math.round(idleFor) } });
        ingestIdle.write(requestText('POST', '/data', body));
        reused.ingest.status = (await ingestIdle.response()).status;
      }
      if (queryIdle && !reused.query.closedWhileIdle) {
        queryIdle.write(requestText('GET', `/data/${id}`));
        reused.query.status = (await queryIdle.response()).status;
      }
      ingestIdle?.destroy();
      queryIdle?.destroy();
      log(
        `keep-alive: idle ${(idleFor / 1000).toFixed(1)} s, then reused: ingest ${reused.ingest.status}, query ${reused.query.status}`,
      );

      clearInterval(sampler);
      sampleMemory();
      const memory: Partial<Record<FunctionName, FunctionReport['memory']>> = {};
      const cpu: Partial<Record<FunctionName, CpuThrottling | undefined>> = {};
      for (const fn of FUNCTIONS) {
        const container = main[fn]?.container;
        memory[fn] = {
          limitBytes: podLimits(fn).memoryBytes,
          cgroupPeakBytes: container?.memory()?.peakBytes,
          sampledPeakWorkingSetBytes: peaks[fn].workingSet,
          sampledPeakAnonBytes: peaks[fn].anon,
          nodePeakRssBytes: container?.peakRssBytes(),
        };
        cpu[fn] = container?.cpuThrottling();
      }

      const drains = await Promise.all(
        FUNCTIONS.map(async (fn) => {
          const { container, port } = main[fn] ?? { container: undefined, port: 0 };
          if (!container) throw new Error(`${fn} not running`);
          return [fn, await drainCheck(fn, container, port, source, drainTimeoutMs)] as const;
        }),
      );
      const drainOf = Object.fromEntries(drains) as Record<FunctionName, FunctionReport['drain']>;
      for (const fn of FUNCTIONS) {
        const d = drainOf[fn];
        log(
          `drain ${fn}: SIGTERM with ${IN_FLIGHT} in flight → [${d.responses.join(', ')}], new connection ${d.newConnection}, /readyz ${d.readiness.status}, exit ${d.exitCode} after ${d.exitedAfterMs.toFixed(0)} ms (budget ${d.budgetMs} ms)`,
        );
      }

      const functionReport = (fn: FunctionName): FunctionReport => ({
        port: main[fn]?.port ?? 0,
        limits: podLimits(fn),
        firstReadyMs: main[fn]?.firstReadyMs ?? Number.NaN,
        probes: probes[fn] ?? { healthz: 0, readyz: 0, metrics: 0 },
        dependencies: dependencies[fn] ?? {},
        keepAlive: {
          announcedSeconds: idle[fn]?.announcedSeconds ?? Number.NaN,
          closedWhileIdle: reused[fn]?.closedWhileIdle ?? true,
          reusedStatus: reused[fn]?.status ?? 0,
        },
        memory: memory[fn] ?? {
          limitBytes: 0,
          cgroupPeakBytes: undefined,
          sampledPeakWorkingSetBytes: 0,
          sampledPeakAnonBytes: 0,
          nodePeakRssBytes: undefined,
        },
        cpu: cpu[fn],
        drain: drainOf[fn],
        errors: errorLines(main[fn]?.container),
      });
      return {
        image,
        run: runId,
        nodeOptions,
        migrate: migrateReport,
        roundTrip,
        idleRequestedMs: idleMs,
        idleMs: idleFor,
        functions: { ingest: functionReport('ingest'), query: functionReport('query') },
        starts,
        load,
        durationMs: performance.now() - begun,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    for (const child of hostProcesses) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(containers.map((container) => container.remove()));
  }
}

function errorLines(container: Container | undefined): string[] {
  return (container?.logLines() ?? [])
    .filter((line) => Number(line.level) >= 50 || (typeof line.level === 'string' && /error|fatal/.test(line.level)))
    .slice(0, 5)
    .map((line) => JSON.stringify(line).slice(0, 600));
}

/** SIGTERM with IN_FLIGHT requests whose bodies are still arriving and a probe whose headers are not complete. */
async function drainCheck(
  fn: FunctionName,
  container: Container,
  port: number,
  source: string,
  drainTimeoutMs: number,
): Promise<FunctionReport['drain']> {
  const texts = Array.from({ length: IN_FLIGHT }, () =>
    fn === 'ingest'
      ? requestText(
          'POST',
          '/data',
          JSON.stringify({ id: randomUUID(), source, type: 'reading', payload: { in_flight: true } }),
        )
      : requestText('GET', `/data?source=${source}&limit=5`, '1234567890', 'text/plain'),
  ).map(splitRequest);
  const connections = await Promise.all(texts.map(() => RawConnection.open(port)));
  texts.forEach((text, i) => {
    connections[i]?.write(text.head);
  });
  const probe = await RawConnection.open(port);
  probe.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n');
  await sleep(200);

  let exitedAt: number | undefined;
  void container.exited.then(() => {
    exitedAt = performance.now();
  });
  const signalledAt = performance.now();
  container.signal('SIGTERM');
  const drainingLog = await container.waitForLog('draining', 5_000);
  const newConnection = await connectOutcome(port);
  probe.write('\r\n');
  const readiness: Reply = await probe.response();
  await sleep(300);
  const runningAfterSignal = exitedAt === undefined;
  texts.forEach((text, i) => {
    connections[i]?.write(text.rest);
  });
  const responses = await Promise.all(connections.map((connection) => connection.response()));
  const exit = await withTimeout(container.exited, drainTimeoutMs + 10_000, `${container.name} exit after SIGTERM`);
  for (const connection of [...connections, probe]) connection.destroy();
  return {
    drainingLog,
    newConnection,
    readiness: { status: readiness.status, body: readiness.body },
    runningAfterSignal,
    responses: responses.map((response) => response.status),
    exitCode: exit.code,
    // podman's client returns once the container is gone (--rm): an upper bound of the process's own exit.
    exitedAfterMs: (exitedAt ?? performance.now()) - signalledAt,
    budgetMs: podLimits(fn).gracePeriodMs - QUEUE_PROXY_DRAIN_MS,
    drainTimeoutMs,
    stoppedLog: container.logLines().find((line) => line.msg === 'stopped'),
  };
}
