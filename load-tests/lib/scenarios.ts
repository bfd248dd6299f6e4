/**
 * Scenario and threshold definitions as plain objects, in the shape of k6's `options.scenarios` and
 * `options.thresholds` (the k6 adapter passes them through unchanged), plus their local equivalent as a list of
 * constant-rate steps for vegeta. One place says what each scenario is; k6 and the local runner both read it.
 */
import { BASE_DEFAULTS, formatDuration, type LoadSettings, parseDuration, type SettingsDefaults } from './env.ts';

export const SCENARIO_NAMES = ['smoke', 'load', 'slo', 'soak', 'spike', 'mixed'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** The service-level objective of the original design: p99 under 500 ms with fewer than 0.1 % errors. */
export const SLO = { p99Ms: 500, maxErrorRate: 0.001 } as const;

export interface RateStage {
  readonly duration: string;
  readonly target: number;
}

interface BaseScenario {
  readonly exec?: string;
  readonly gracefulStop?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

export interface SharedIterationsScenario extends BaseScenario {
  readonly executor: 'shared-iterations';
  readonly vus: number;
  readonly iterations: number;
  readonly maxDuration: string;
}

export interface ConstantArrivalRateScenario extends BaseScenario {
  readonly executor: 'constant-arrival-rate';
  readonly rate: number;
  readonly timeUnit: string;
  readonly duration: string;
  readonly preAllocatedVUs: number;
  readonly maxVUs: number;
}

export interface RampingArrivalRateScenario extends BaseScenario {
  readonly executor: 'ramping-arrival-rate';
  readonly startRate: number;
  readonly timeUnit: string;
  readonly stages: readonly RateStage[];
  readonly preAllocatedVUs: number;
  readonly maxVUs: number;
}

export type ScenarioDefinition = SharedIterationsScenario | ConstantArrivalRateScenario | RampingArrivalRateScenario;

export type ThresholdDefinition =
  | string
  | { readonly threshold: string; readonly abortOnFail?: boolean; readonly delayAbortEval?: string };

export interface TestPlan {
  readonly name: ScenarioName;
  readonly scenarios: Readonly<Record<string, ScenarioDefinition>>;
  readonly thresholds: Readonly<Record<string, readonly ThresholdDefinition[]>>;
  /** 429/503 with Retry-After count as the service shedding load as designed, not as contract failures. */
  readonly allowShed: boolean;
}

/**
 * Defaults of each scenario for k6 against a cluster route (every one can be overridden by env). The local
 * runner (scripts/load.ts) starts from smaller ones that suit a shared 2-core machine.
 */
export const SCENARIO_DEFAULTS: Readonly<Record<ScenarioName, SettingsDefaults>> = {
  smoke: { ...BASE_DEFAULTS, vus: 1, maxVus: 1, durationS: 60, batchSize: 5, iterations: 1 },
  load: { ...BASE_DEFAULTS, targetRps: 1000, rampS: 60, durationS: 300, vus: 100, maxVus: 1000 },
  slo: { ...BASE_DEFAULTS, targetRps: 1000, durationS: 300, vus: 100, maxVus: 2000 },
  soak: { ...BASE_DEFAULTS, targetRps: 200, durationS: 3600, vus: 50, maxVus: 500 },
  spike: { ...BASE_DEFAULTS, targetRps: 2000, rampS: 10, durationS: 60, vus: 100, maxVus: 2000 },
  mixed: { ...BASE_DEFAULTS, targetRps: 500, durationS: 300, vus: 50, maxVus: 1000 },
};

/** The named metric k6 counts contract failures in (every failed check of `checks.ts`). */
export const CONTRACT_FAILURES = 'contract_failures';

/** p99 < 500 ms and errors < 0.1 %; `abort` stops the run at the first breach (after 10 s of data). */
export function sloThresholds(abort: boolean, metricSuffix = ''): Record<string, ThresholdDefinition[]> {
  const rule = (threshold: string): ThresholdDefinition =>
    abort ? { threshold, abortOnFail: true, delayAbortEval: '10s' } : threshold;
  return {
    [`http_req_duration${metricSuffix}`]: [rule(`p(99)<${SLO.p99Ms}`)],
    [`http_req_failed${metricSuffix}`]: [rule(`rate<${SLO.maxErrorRate}`)],
  };
}

const arrival = (settings: LoadSettings) => ({
  timeUnit: '1s',
  preAllocatedVUs: settings.vus,
  maxVUs: settings.maxVus,
});

/** Requests one run of a plan is meant to send (smoke: its iterations). */
export function plannedRequests(plan: TestPlan): number {
  let total = 0;
  for (const scenario of Object.values(plan.scenarios)) {
    if (scenario.executor === 'shared-iterations') total += scenario.iterations;
    else total += rateSteps(scenario, 1).reduce((sum, step) => sum + step.rate * step.durationS, 0);
  }
  return Math.round(total);
}

/** The k6 scenarios and thresholds of `name` with these settings. */
export function planFor(name: ScenarioName, settings: LoadSettings): TestPlan {
  const duration = formatDuration(settings.durationS);
  const ramp = formatDuration(settings.rampS);
  const rps = settings.targetRps;
  switch (name) {
    case 'smoke':
      return {
        name,
        allowShed: false,
        scenarios: {
          smoke: {
            executor: 'shared-iterations',
            vus: settings.vus,
            iterations: settings.iterations,
            maxDuration: duration,
          },
        },
        thresholds: { checks: ['rate==1'], http_req_failed: ['rate==0'], [CONTRACT_FAILURES]: ['count==0'] },
      };
    case 'load':
      return {
        name,
        allowShed: false,
        scenarios: {
          load: {
            executor: 'ramping-arrival-rate',
            startRate: 0,
            ...arrival(settings),
            stages: [
              { duration: ramp, target: rps },
              { duration, target: rps },
              { duration: ramp, target: 0 },
            ],
          },
        },
        thresholds: { ...sloThresholds(false), checks: ['rate>0.999'] },
      };
    case 'slo': {
      const plan: TestPlan = {
        name,
        allowShed: false,
        scenarios: { slo: { executor: 'constant-arrival-rate', rate: rps, duration, ...arrival(settings) } },
        thresholds: {},
      };
      // Iterations k6 could not start (no free VU) mean the rate was not served: as bad as errors.
      const droppedBudget = Math.max(1, Math.floor(plannedRequests(plan) * SLO.maxErrorRate));
      return {
        ...plan,
        thresholds: {
          ...sloThresholds(true),
          checks: ['rate>0.999'],
          dropped_iterations: [`count<${droppedBudget}`],
        },
      };
    }
    case 'soak':
      return {
        name,
        allowShed: false,
        scenarios: { soak: { executor: 'constant-arrival-rate', rate: rps, duration, ...arrival(settings) } },
        // Drift: the first and the last fifth of the run, side by side in the summary (requests carry `phase`).
        thresholds: {
          ...sloThresholds(false),
          ...sloThresholds(false, '{phase:early}'),
          ...sloThresholds(false, '{phase:late}'),
          checks: ['rate>0.999'],
        },
      };
    case 'spike':
      return {
        name,
        allowShed: true,
        scenarios: {
          spike: {
            executor: 'ramping-arrival-rate',
            startRate: 0,
            ...arrival(settings),
            stages: [
              { duration: ramp, target: rps },
              { duration, target: rps },
              { duration: ramp, target: 0 },
            ],
          },
        },
        // Shedding (429/503 + Retry-After) is the designed answer to a spike; anything else is a failure.
        thresholds: { http_req_failed: [`rate<${SLO.maxErrorRate}`], checks: ['rate>0.999'], shed: ['rate<0.5'] },
      };
    case 'mixed':
      return {
        name,
        allowShed: false,
        scenarios: { mixed: { executor: 'constant-arrival-rate', rate: rps, duration, ...arrival(settings) } },
        thresholds: {
          ...sloThresholds(false),
          ...sloThresholds(false, '{kind:read}'),
          ...sloThresholds(false, '{kind:write}'),
          checks: ['rate>0.999'],
        },
      };
  }
}

export interface RateStep {
  /** Requests per second, at least 1. */
  readonly rate: number;
  readonly durationS: number;
}

/**
 * A scenario as constant-rate steps of at most `stepS` seconds (vegeta attacks at one rate): a ramp becomes a
 * staircase at each step's mean rate. Steps under 1 request/s are left out (vegeta reads rate 0 as "unbounded").
 */
export function rateSteps(scenario: ScenarioDefinition, stepS: number): RateStep[] {
  if (scenario.executor === 'shared-iterations') return [];
  if (scenario.executor === 'constant-arrival-rate') {
    return [{ rate: scenario.rate, durationS: durationSeconds(scenario.duration) }];
  }
  const steps: RateStep[] = [];
  let from = scenario.startRate;
  for (const stage of scenario.stages) {
    const total = durationSeconds(stage.duration);
    const count = Math.max(1, Math.ceil(total / stepS));
    for (let i = 0; i < count; i++) {
      const durationS = Math.min(stepS, total - i * stepS);
      const midpoint = (i * stepS + durationS / 2) / total;
      const rate = Math.round(from + (stage.target - from) * midpoint);
      const last = steps[steps.length - 1];
      if (rate < 1) continue;
      if (last !== undefined && last.rate === rate)
        steps[steps.length - 1] = { rate, durationS: last.durationS + durationS };
      else steps.push({ rate, durationS });
    }
    from = stage.target;
  }
  return steps;
}

const durationSeconds = (text: string): number => parseDuration(text) ?? 0;

/** Which fifth of a soak a request falls in, from the scenario's progress (0–1): `early`, `middle` or `late`. */
export const phaseOf = (progress: number): 'early' | 'middle' | 'late' =>
  progress < 0.2 ? 'early' : progress >= 0.8 ? 'late' : 'middle';
