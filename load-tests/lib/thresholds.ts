/**
 * k6's threshold rules (`p(99)<500`, `rate<0.001`, `count==0`, with `{tag:value}` sub-metrics) evaluated over
 * plain samples, so the local runner judges a vegeta run by the very thresholds the k6 script declares.
 * Supports the metrics this project's plans use. k6-independent.
 */
import type { ThresholdDefinition } from './scenarios.ts';

/** One request as the local runner saw it. */
export interface Sample {
  readonly durationMs: number;
  /** Not the expected status (k6's http_req_failed); a transport error counts as failed. */
  readonly failed: boolean;
  /** The response kept the contract (k6's check passed). */
  readonly ok: boolean;
  /** Answered 429/503: load shed. */
  readonly shed: boolean;
  readonly tags: Readonly<Record<string, string>>;
}

export interface ThresholdResult {
  readonly metric: string;
  readonly rule: string;
  /** The measured value, null when no sample matched (which passes, as in k6). */
  readonly value: number | null;
  readonly ok: boolean;
}

const RULE = /^\s*(p\((\d+(?:\.\d+)?)\)|avg|min|max|med|rate|count)\s*(<=|<|>=|>|===|==|!=)\s*(-?\d+(?:\.\d+)?)\s*$/;

/** Every rule of `thresholds` against `samples`; `dropped` is k6's dropped_iterations (vegeta never drops). */
export function evaluateThresholds(
  thresholds: Readonly<Record<string, readonly ThresholdDefinition[]>>,
  samples: readonly Sample[],
  dropped = 0,
): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const [metric, rules] of Object.entries(thresholds)) {
    const { name, tags } = parseMetric(metric);
    const matching = samples.filter((sample) => Object.keys(tags).every((key) => sample.tags[key] === tags[key]));
    for (const definition of rules) {
      const rule = typeof definition === 'string' ? definition : definition.threshold;
      const value = measure(name, rule, matching, dropped);
      results.push({ metric, rule, value, ok: value === null || compare(rule, value) });
    }
  }
  return results;
}

/** `http_req_duration{kind:read}` → the metric name and its tag filter. */
export function parseMetric(metric: string): { name: string; tags: Record<string, string> } {
  const match = /^([^{]+)(?:\{(.*)\})?$/.exec(metric);
  const tags: Record<string, string> = {};
  for (const pair of (match?.[2] ?? '').split(',')) {
    const at = pair.indexOf(':');
    if (at > 0) tags[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return { name: match?.[1] ?? metric, tags };
}

function measure(name: string, rule: string, samples: readonly Sample[], dropped: number): number | null {
  const aggregate = RULE.exec(rule)?.[1];
  if (aggregate === undefined) throw new Error(`unsupported threshold rule "${rule}"`);
  if (name === 'dropped_iterations') return dropped;
  if (name === 'contract_failures') return samples.filter((s) => !s.ok).length;
  if (samples.length === 0) return null;
  const rate = (count: number) => count / samples.length;
  switch (name) {
    case 'http_req_failed':
      return rate(samples.filter((s) => s.failed).length);
    case 'checks':
      return rate(samples.filter((s) => s.ok).length);
    case 'shed':
      return rate(samples.filter((s) => s.shed).length);
    case 'http_req_duration':
      return trend(
        aggregate,
        samples.map((s) => s.durationMs),
      );
    default:
      throw new Error(`no local equivalent of the k6 metric "${name}"`);
  }
}

function trend(aggregate: string, values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  if (aggregate === 'avg') return sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  if (aggregate === 'min') return sorted[0] ?? 0;
  if (aggregate === 'max') return sorted[sorted.length - 1] ?? 0;
  const p = aggregate === 'med' ? 50 : Number(/^p\((.*)\)$/.exec(aggregate)?.[1]);
  return percentile(sorted, p);
}

/** The p-th percentile of sorted values, interpolating between ranks as k6 does. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const lower = sorted[low] ?? 0;
  const upper = sorted[Math.min(low + 1, sorted.length - 1)] ?? lower;
  return lower + (upper - lower) * (rank - low);
}

function compare(rule: string, value: number): boolean {
  const match = RULE.exec(rule);
  const limit = Number(match?.[4]);
  switch (match?.[3]) {
    case '<':
      return value < limit;
    case '<=':
      return value <= limit;
    case '>':
      return value > limit;
    case '>=':
      return value >= limit;
    case '==':
    case '===':
      return value === limit;
    case '!=':
      return value !== limit;
    default:
      return false;
  }
}
