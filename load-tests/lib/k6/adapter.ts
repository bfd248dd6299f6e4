/**
 * The thin k6 side: settings from `__ENV`, the plain plans as k6 `options`, `RequestSpec`s sent with `k6/http`,
 * answers judged by `checks.ts` through `check()`. Everything else lives in the k6-independent modules beside it.
 */
import { check, fail } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Rate } from 'k6/metrics';
import type { Options, Scenario, Threshold } from 'k6/options';
import { checkExchange, type Exchange, expectedStatus, isShed, normalizeHeaders } from '../checks.ts';
import { type LoadSettings, parseSettings } from '../env.ts';
import { describeMemoryDrift, type ResidentMemory, residentMemory } from '../metrics-text.ts';
import { createRng, hashSeed } from '../prng.ts';
import type { RecordBody } from '../records.ts';
import {
  createMixedStream,
  createRequestIds,
  DEFAULT_MIX,
  functionOf,
  headersOf,
  prefillRecords,
  prefillRequests,
  type RequestSpec,
  recordOptionsOf,
  smokePlan,
} from '../requests.ts';
import {
  CONTRACT_FAILURES,
  phaseOf,
  SCENARIO_DEFAULTS,
  type ScenarioDefinition,
  type ScenarioName,
  type TestPlan,
} from '../scenarios.ts';

// k6 has a console at runtime, but @types/k6 does not declare one (and lib "dom" would declare much k6 lacks).
const log = (globalThis as unknown as { console: { log(text: string): void; warn(text: string): void } }).console;

// Custom metrics must exist in the init context of every script whose thresholds name them.
const contractFailures = new Counter(CONTRACT_FAILURES);
const shed = new Rate('shed');

/** What `setup()` hands every VU: the run's identity and the records reads may ask for. */
export interface SetupData {
  readonly seed: number;
  readonly now: number;
  readonly known: readonly RecordBody[];
  readonly memory: readonly ResidentMemory[];
}

/** The scenario's settings from `__ENV` (k6 stops at init with every bad variable named). */
export function settingsFor(name: ScenarioName): LoadSettings {
  return parseSettings(__ENV, SCENARIO_DEFAULTS[name]);
}

/** A plan as k6 options. */
export function optionsFor(plan: TestPlan): Options {
  const scenarios: Record<string, Scenario> = {};
  for (const [name, definition] of Object.entries(plan.scenarios)) scenarios[name] = toK6Scenario(definition);
  const thresholds: Record<string, Threshold[]> = {};
  for (const [metric, rules] of Object.entries(plan.thresholds)) {
    thresholds[metric] = rules.map((rule): Threshold => (typeof rule === 'string' ? rule : { ...rule }));
  }
  return {
    scenarios,
    thresholds,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
    setupTimeout: '5m',
    tags: { scenario_plan: plan.name },
  };
}

function toK6Scenario(definition: ScenarioDefinition): Scenario {
  const tags = definition.tags === undefined ? {} : { tags: { ...definition.tags } };
  if (definition.executor === 'ramping-arrival-rate') {
    return { ...definition, ...tags, stages: definition.stages.map((stage) => ({ ...stage })) };
  }
  return { ...definition, ...tags };
}

/** Sends one request to the function that serves it; the answer as a plain `Exchange`. */
export function send(
  spec: RequestSpec,
  settings: LoadSettings,
  plan: TestPlan,
  tags: Record<string, string> = {},
): Exchange {
  const base = functionOf(spec) === 'ingest' ? settings.ingestUrl : settings.queryUrl;
  const expected = [expectedStatus(spec.expect), ...(plan.allowShed ? [429, 503] : [])];
  const response = http.request(spec.method, `${base}${spec.path}`, spec.body ?? null, {
    headers: headersOf(spec, settings),
    tags: { name: spec.name, kind: kindOf(spec), ...tags },
    timeout: `${settings.timeoutS}s`,
    responseCallback: http.expectedStatuses(...expected),
  });
  const body = typeof response.body === 'string' ? response.body : '';
  return {
    status: response.status,
    headers: normalizeHeaders(response.headers),
    body: response.error && response.status === 0 ? response.error : body,
  };
}

let reported = 0;

/** Judges an answer: one k6 check per request name, the reasons logged (the first 20), shedding counted. */
export function verify(spec: RequestSpec, exchange: Exchange, plan: TestPlan): boolean {
  const failures = checkExchange(spec, exchange, { allowShed: plan.allowShed });
  const ok = check(exchange, { [`${spec.name} keeps the contract`]: () => failures.length === 0 }, { name: spec.name });
  if (!ok) {
    contractFailures.add(1, { name: spec.name });
    if (reported++ < 20) log.warn(`${spec.method} ${spec.path} (${spec.name}): ${failures.join('; ')}`);
  }
  if (plan.allowShed) shed.add(isShed(exchange));
  return ok;
}

/** `setup()` of the read/write scenarios: writes the records reads will ask for, samples the functions' memory. */
export function prefill(settings: LoadSettings): SetupData {
  const now = Date.now();
  const record = recordOptionsOf(settings, now);
  const known = settings.readRatio > 0 ? prefillRecords(settings.seed, settings.prefill, record) : [];
  const plan: TestPlan = { name: 'smoke', scenarios: {}, thresholds: {}, allowShed: false };
  for (const spec of prefillRequests(known, 100, createRequestIds(record.runTag, 'setup'))) {
    const answer = send(spec, settings, plan);
    const failures = checkExchange(spec, answer);
    if (failures.length > 0) fail(`prefill failed: ${failures.join('; ')}`);
  }
  return { seed: settings.seed, now, known, memory: sampleMemory(settings) };
}

/** `teardown()`: memory of the functions now against the start (one pod each when behind a route). */
export function reportMemory(settings: LoadSettings, data: SetupData): void {
  for (const line of describeMemoryDrift(data.memory, sampleMemory(settings))) log.log(line);
}

function sampleMemory(settings: LoadSettings): ResidentMemory[] {
  const urls = settings.ingestUrl === settings.queryUrl ? [settings.queryUrl] : [settings.ingestUrl, settings.queryUrl];
  return urls.flatMap((base) => {
    const response = http.get(`${base}/metrics`, {
      tags: { name: 'metrics' },
      responseCallback: http.expectedStatuses(200, 404),
    });
    return response.status === 200 && typeof response.body === 'string' ? residentMemory(response.body) : [];
  });
}

let stream: (() => RequestSpec) | undefined;

/** One iteration of a read/write scenario: the next request of this VU's own seeded stream. */
export function runMixed(plan: TestPlan, settings: LoadSettings, data: SetupData): void {
  if (stream === undefined) {
    const vu = exec.vu.idInTest;
    const record = { ...recordOptionsOf(settings, data.now), now: Date.now() };
    const mix = {
      ...DEFAULT_MIX,
      readRatio: settings.readRatio,
      batchSize: settings.batchSize,
      known: data.known,
      record,
    };
    stream = createMixedStream(
      createRng(hashSeed(data.seed, 'vu', vu)),
      mix,
      createRequestIds(record.runTag, `v${vu}`),
    );
  }
  const spec = stream();
  const tags = plan.name === 'soak' ? { phase: phaseOf(exec.scenario.progress) } : {};
  verify(spec, send(spec, settings, plan, tags), plan);
}

/** One pass of the smoke plan: each step's answer checked and handed to the next step. */
export function runSmoke(plan: TestPlan, settings: LoadSettings): void {
  const seed = hashSeed(settings.seed, 'smoke', exec.vu.idInTest, exec.vu.iterationInScenario);
  const record = recordOptionsOf(settings, Date.now());
  const steps = smokePlan({
    rng: createRng(seed),
    record,
    batchSize: settings.batchSize,
    requestId: createRequestIds(record.runTag, `smoke${exec.vu.idInTest}.${exec.vu.iterationInScenario}`),
  });
  for (let step = steps.next(); step.done !== true; ) {
    const exchange = send(step.value, settings, plan);
    verify(step.value, exchange, plan);
    step = steps.next(exchange);
  }
}

const kindOf = (spec: RequestSpec): 'read' | 'write' | 'other' =>
  spec.method === 'POST' ? 'write' : spec.path.startsWith('/data') ? 'read' : 'other';
