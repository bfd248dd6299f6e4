/** Scenario, threshold and settings definitions of the load tests (load-tests/lib), as plain data. */
import { describe, expect, it } from '@jest/globals';
import { formatDuration, parseDuration, parseSettings, SettingsError } from '../../load-tests/lib/env.ts';
import { describeMemoryDrift, residentMemory } from '../../load-tests/lib/metrics-text.ts';
import {
  phaseOf,
  planFor,
  plannedRequests,
  rateSteps,
  SCENARIO_DEFAULTS,
  SCENARIO_NAMES,
  type ScenarioName,
  SLO,
} from '../../load-tests/lib/scenarios.ts';
import { evaluateThresholds, parseMetric, percentile, type Sample } from '../../load-tests/lib/thresholds.ts';

const settingsFor = (name: ScenarioName, env: Record<string, string> = {}) =>
  parseSettings({ SEED: '1', ...env }, SCENARIO_DEFAULTS[name]);

describe('settings from the environment', () => {
  it('defaults to the local gateway and the scenario defaults', () => {
    const settings = parseSettings({}, SCENARIO_DEFAULTS.slo, 1_000);
    expect(settings).toMatchObject({
      baseUrl: 'http://127.0.0.1:8080',
      ingestUrl: 'http://127.0.0.1:8080',
      queryUrl: 'http://127.0.0.1:8080',
      targetRps: SCENARIO_DEFAULTS.slo.targetRps,
      readRatio: 0.9,
      batchSize: 1,
      seed: 1_000,
    });
  });

  it('reads every variable, trims a trailing slash, splits ingest and query routes', () => {
    const settings = parseSettings(
      {
        BASE_URL: 'https://data.example.com/',
        QUERY_URL: 'https://query.example.com',
        TARGET_RPS: '10000',
        DURATION: '1h30m',
        RAMP: '45s',
        READ_RATIO: '0.5',
        BATCH_SIZE: '100',
        VUS: '200',
        MAX_VUS: '3000',
        SEED: '77',
        PREFILL: '10',
        PAYLOAD_BYTES: '1024',
        TIMEOUT: '30s',
      },
      SCENARIO_DEFAULTS.load,
    );
    expect(settings).toMatchObject({
      baseUrl: 'https://data.example.com',
      ingestUrl: 'https://data.example.com',
      queryUrl: 'https://query.example.com',
      targetRps: 10_000,
      durationS: 5_400,
      rampS: 45,
      readRatio: 0.5,
      batchSize: 100,
      vus: 200,
      maxVus: 3_000,
      seed: 77,
      prefill: 10,
      payloadBytes: 1_024,
      timeoutS: 30,
    });
  });

  it('names every malformed variable in one error, never falls back silently', () => {
    let error: unknown;
    try {
      parseSettings(
        {
          BASE_URL: 'ftp://x',
          TARGET_RPS: '-5',
          DURATION: 'soon',
          READ_RATIO: '1.5',
          BATCH_SIZE: '2.5',
          MAX_VUS: '1',
          VUS: '10',
        },
        SCENARIO_DEFAULTS.slo,
      );
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SettingsError);
    const problems = (error as SettingsError).problems.map((p) => p.split('=')[0]);
    expect(problems).toEqual(['BASE_URL', 'TARGET_RPS', 'DURATION', 'READ_RATIO', 'BATCH_SIZE', 'MAX_VUS']);
  });

  it('parses and formats k6 durations', () => {
    expect(parseDuration('30s')).toBe(30);
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1h30m')).toBe(5_400);
    expect(parseDuration('1500ms')).toBe(1.5);
    expect(parseDuration('90')).toBe(90);
    expect(parseDuration('5 minutes')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
    expect(formatDuration(5_400)).toBe('1h30m');
    expect(formatDuration(61)).toBe('1m1s');
    expect(formatDuration(0)).toBe('0s');
  });
});

describe('plans', () => {
  it('exist for every scenario, each with one scenario and thresholds k6 accepts', () => {
    for (const name of SCENARIO_NAMES) {
      const plan = planFor(name, settingsFor(name));
      expect(plan.name).toBe(name);
      expect(Object.keys(plan.scenarios)).toEqual([name]);
      for (const [metric, rules] of Object.entries(plan.thresholds)) {
        expect(metric).toMatch(/^[a-z_]+(\{[a-z_]+:[a-z_]+\})?$/);
        for (const rule of rules) {
          const text = typeof rule === 'string' ? rule : rule.threshold;
          expect(text).toMatch(/^(p\(\d+\)|rate|count)(<|>|==)\d+(\.\d+)?$/);
        }
      }
    }
  });

  it('smoke: one VU, shared iterations, nothing may fail', () => {
    const plan = planFor('smoke', settingsFor('smoke', { ITERATIONS: '3' }));
    expect(plan.scenarios.smoke).toEqual({ executor: 'shared-iterations', vus: 1, iterations: 3, maxDuration: '1m' });
    expect(plan.thresholds).toEqual({
      checks: ['rate==1'],
      http_req_failed: ['rate==0'],
      contract_failures: ['count==0'],
    });
  });

  it('slo: constant arrival rate at TARGET_RPS, p99 < 500 ms and errors < 0.1 % abort the run', () => {
    const plan = planFor(
      'slo',
      settingsFor('slo', { TARGET_RPS: '10000', DURATION: '10m', VUS: '300', MAX_VUS: '3000' }),
    );
    expect(plan.scenarios.slo).toEqual({
      executor: 'constant-arrival-rate',
      rate: 10_000,
      timeUnit: '1s',
      duration: '10m',
      preAllocatedVUs: 300,
      maxVUs: 3_000,
    });
    expect(plan.thresholds.http_req_duration).toEqual([
      { threshold: `p(99)<${SLO.p99Ms}`, abortOnFail: true, delayAbortEval: '10s' },
    ]);
    expect(plan.thresholds.http_req_failed).toEqual([
      { threshold: 'rate<0.001', abortOnFail: true, delayAbortEval: '10s' },
    ]);
    expect(plan.thresholds.dropped_iterations).toEqual([`count<${6_000_000 * 0.001}`]);
    expect(plannedRequests(plan)).toBe(6_000_000);
  });

  it('load and spike ramp from 0 to TARGET_RPS and back; spike allows shedding', () => {
    for (const name of ['load', 'spike'] as const) {
      const plan = planFor(name, settingsFor(name, { TARGET_RPS: '800', RAMP: '20s', DURATION: '1m' }));
      expect(plan.scenarios[name]).toMatchObject({
        executor: 'ramping-arrival-rate',
        startRate: 0,
        stages: [
          { duration: '20s', target: 800 },
          { duration: '1m', target: 800 },
          { duration: '20s', target: 0 },
        ],
      });
      expect(plan.allowShed).toBe(name === 'spike');
    }
    expect(planFor('spike', settingsFor('spike')).thresholds.shed).toEqual(['rate<0.5']);
  });

  it('soak and mixed judge sub-metrics by phase and by kind', () => {
    expect(Object.keys(planFor('soak', settingsFor('soak')).thresholds)).toEqual(
      expect.arrayContaining(['http_req_duration{phase:early}', 'http_req_duration{phase:late}']),
    );
    expect(Object.keys(planFor('mixed', settingsFor('mixed')).thresholds)).toEqual(
      expect.arrayContaining(['http_req_duration{kind:read}', 'http_req_duration{kind:write}']),
    );
    expect([0, 0.19, 0.2, 0.79, 0.8, 1].map(phaseOf)).toEqual(['early', 'early', 'middle', 'middle', 'late', 'late']);
  });
});

describe('rate steps for vegeta', () => {
  it('keep a constant rate as one step', () => {
    const plan = planFor('slo', settingsFor('slo', { TARGET_RPS: '500', DURATION: '10s' }));
    expect(rateSteps(plan.scenarios.slo ?? fail(), 1)).toEqual([{ rate: 500, durationS: 10 }]);
  });

  it('turn a ramp into a staircase of mean rates that sends what k6 would, never a rate of 0', () => {
    const plan = planFor('spike', settingsFor('spike', { TARGET_RPS: '100', RAMP: '10s', DURATION: '5s' }));
    const steps = rateSteps(plan.scenarios.spike ?? fail(), 2);
    expect(steps).toEqual([
      { rate: 10, durationS: 2 },
      { rate: 30, durationS: 2 },
      { rate: 50, durationS: 2 },
      { rate: 70, durationS: 2 },
      { rate: 90, durationS: 2 },
      { rate: 100, durationS: 5 },
      { rate: 90, durationS: 2 },
      { rate: 70, durationS: 2 },
      { rate: 50, durationS: 2 },
      { rate: 30, durationS: 2 },
      { rate: 10, durationS: 2 },
    ]);
    expect(steps.every((s) => s.rate >= 1)).toBe(true);
    // k6 sends the area under the ramp: 2 × 100 × 10 / 2 + 100 × 5.
    expect(steps.reduce((sum, s) => sum + s.rate * s.durationS, 0)).toBe(1_500);
  });

  it('have none for the smoke plan, which is iterations, not a rate', () => {
    expect(rateSteps(planFor('smoke', settingsFor('smoke')).scenarios.smoke ?? fail(), 1)).toEqual([]);
  });
});

describe('thresholds evaluated locally', () => {
  const sample = (durationMs: number, extra: Partial<Sample> = {}): Sample => ({
    durationMs,
    failed: false,
    ok: true,
    shed: false,
    tags: { kind: 'read' },
    ...extra,
  });

  it('interpolate percentiles between ranks', () => {
    expect(percentile([1, 2, 3, 4, 5], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5], 99)).toBeCloseTo(4.96);
    expect(percentile([], 99)).toBe(0);
  });

  it('pass an SLO run and fail one with p99 ≥ 500 ms or ≥ 0.1 % errors', () => {
    const thresholds = planFor('slo', settingsFor('slo', { TARGET_RPS: '100', DURATION: '10s' })).thresholds;
    const fast = Array.from({ length: 1_000 }, (_, i) => sample(5 + (i % 10)));
    expect(evaluateThresholds(thresholds, fast).every((t) => t.ok)).toBe(true);
    const slow = fast.map((s, i) => (i % 50 === 0 ? sample(600) : s));
    const failedP99 = evaluateThresholds(thresholds, slow).filter((t) => !t.ok);
    expect(failedP99.map((t) => `${t.metric} ${t.rule}`)).toEqual(['http_req_duration p(99)<500']);
    const errors = fast.map((s, i) => (i < 1 ? { ...s, failed: true, ok: false } : s));
    const failedErrors = evaluateThresholds(thresholds, errors).filter((t) => !t.ok);
    expect(failedErrors.map((t) => t.metric)).toEqual(['http_req_failed', 'checks']);
    expect(evaluateThresholds(thresholds, fast, 1).find((t) => t.metric === 'dropped_iterations')?.ok).toBe(false);
  });

  it('filter sub-metrics by tag and pass when no sample matches, as k6 does', () => {
    const thresholds = { 'http_req_duration{kind:write}': ['p(99)<500'], contract_failures: ['count==0'] };
    const results = evaluateThresholds(thresholds, [sample(900, { tags: { kind: 'read' } })]);
    expect(results).toEqual([
      { metric: 'http_req_duration{kind:write}', rule: 'p(99)<500', value: null, ok: true },
      { metric: 'contract_failures', rule: 'count==0', value: 0, ok: true },
    ]);
    expect(parseMetric('http_req_duration{phase:late,kind:read}')).toEqual({
      name: 'http_req_duration',
      tags: { phase: 'late', kind: 'read' },
    });
    expect(() => evaluateThresholds({ iterations: ['count>1'] }, [sample(1)])).toThrow('no local equivalent');
  });
});

describe('memory drift from /metrics', () => {
  it('reads resident memory per service and describes the change', () => {
    const text = [
      '# TYPE process_resident_memory_bytes gauge',
      'process_resident_memory_bytes{service="query",revision="local"} 104857600',
      'process_resident_memory_bytes 52428800',
      'nodejs_heap_size_used_bytes{service="query"} 1',
    ].join('\n');
    const before = residentMemory(text);
    expect(before).toEqual([
      { service: 'query', bytes: 104_857_600 },
      { service: 'unknown', bytes: 52_428_800 },
    ]);
    expect(describeMemoryDrift(before, [{ service: 'query', bytes: 115_343_360 }])).toEqual([
      'query: RSS 100.0 MiB → 110.0 MiB (+10.0 %)',
    ]);
  });
});

function fail(): never {
  throw new Error('missing scenario');
}
