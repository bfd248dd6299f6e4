/**
 * The local load runs behind `npm run load:<name>`: the k6 scenarios' equivalents with vegeta (constant-rate
 * steps, every response checked against the contract, judged by the k6 script's own thresholds) and wrk
 * (closed-loop maximum). Results land in one folder per run: vegeta's JSON report, its HTML plot, summary.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { checkExchange, expectedStatus, isShed, normalizeHeaders } from '../../load-tests/lib/checks.ts';
import type { LoadSettings } from '../../load-tests/lib/env.ts';
import type { ResidentMemory } from '../../load-tests/lib/metrics-text.ts';
import { createRng, hashSeed } from '../../load-tests/lib/prng.ts';
import type { RecordBody } from '../../load-tests/lib/records.ts';
import {
  createMixedStream,
  createRequestIds,
  DEFAULT_MIX,
  prefillRecords,
  type RequestSpec,
  recordOptionsOf,
  smokePlan,
  take,
} from '../../load-tests/lib/requests.ts';
import { phaseOf, planFor, type RateStep, rateSteps, type TestPlan } from '../../load-tests/lib/scenarios.ts';
import { evaluateThresholds, percentile, type Sample, type ThresholdResult } from '../../load-tests/lib/thresholds.ts';
import { logger, ROOT } from '../processes.ts';
import type { CliOptions, LocalRun } from './cli.ts';
import { checkReachable, describeMemoryDrift, prefill, sampleMemory, send } from './client.ts';
import { attack, eachResult, plot, report, toTarget, type VegetaReport, writeTargets } from './vegeta.ts';
import { runWrk } from './wrk.ts';

export const say = logger('load');

/** Targets written per constant-rate step at most; beyond it vegeta cycles (writes come back `duplicate`). */
const MAX_TARGETS_PER_STEP = 100_000;
/** Contract failures kept as examples in summary.json. */
const MAX_EXAMPLES = 50;

export interface RunSummary {
  readonly run: LocalRun;
  readonly outDir: string;
  readonly ok: boolean;
  readonly [key: string]: unknown;
}

/** Runs one local load run end to end and returns its summary (also written to <outDir>/summary.json). */
export async function runLocal(options: CliOptions): Promise<RunSummary> {
  const { run, settings } = options;
  const outDir = options.outDir ?? join(ROOT, 'load-results', `${run}-${stamp(new Date())}`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'settings.json'), `${JSON.stringify({ run, ...settings }, null, 2)}\n`);
  await checkReachable(settings);
  const summary =
    run === 'max'
      ? await runWrk(settings, outDir)
      : run === 'smoke'
        ? await runSmoke(settings, outDir)
        : await runRate(run, settings, outDir);
  const result = { run, outDir, ...summary } as RunSummary;
  writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

/** Smoke: the k6 smoke plan step by step with fetch, then a short vegeta burst of the mixed stream. */
async function runSmoke(settings: LoadSettings, outDir: string): Promise<Omit<RunSummary, 'run' | 'outDir'>> {
  const plan = planFor('smoke', settings);
  const record = recordOptionsOf(settings, Date.now());
  const samples: Sample[] = [];
  const examples: string[] = [];
  for (let pass = 0; pass < settings.iterations; pass++) {
    const steps = smokePlan({
      rng: createRng(hashSeed(settings.seed, 'smoke', pass)),
      record,
      batchSize: settings.batchSize,
      requestId: createRequestIds(record.runTag, `smoke${pass}`),
    });
    for (let step = steps.next(); step.done !== true; ) {
      const spec = step.value;
      const answer = await send(spec, settings);
      const failures = checkExchange(spec, answer);
      if (failures.length > 0) examples.push(`${spec.method} ${spec.path} (${spec.name}): ${failures.join('; ')}`);
      samples.push(sampleOf(spec, answer.status, answer.durationMs, failures.length === 0, plan));
      step = steps.next(answer);
    }
  }
  say(`smoke plan: ${samples.length} requests, ${examples.length} contract failures`);
  const burst = await vegetaRun(plan, [{ rate: settings.targetRps, durationS: settings.durationS }], settings, outDir);
  samples.push(...burst.samples);
  examples.push(...burst.examples);
  return judge(plan, settings, samples, examples, burst.report, burst.steps);
}

/** slo, soak, spike, mixed: the k6 scenario as constant-rate vegeta steps. */
async function runRate(
  run: Exclude<LocalRun, 'smoke' | 'max'>,
  settings: LoadSettings,
  outDir: string,
): Promise<Omit<RunSummary, 'run' | 'outDir'>> {
  const plan = planFor(run, settings);
  const scenario = Object.values(plan.scenarios)[0];
  if (scenario === undefined) throw new Error(`no scenario in the ${run} plan`);
  // Ramps as staircases of about ten steps each, at least a second per step.
  const steps = rateSteps(scenario, Math.max(1, Math.round(settings.rampS / 10)));
  const before = run === 'soak' ? await sampleMemory(settings) : [];
  const result = await vegetaRun(plan, steps, settings, outDir);
  const summary = judge(plan, settings, result.samples, result.examples, result.report, result.steps);
  if (run !== 'soak') return summary;
  return { ...summary, drift: drift(result.samples, before, await sampleMemory(settings)) };
}

interface VegetaRunResult {
  readonly report: VegetaReport;
  readonly samples: Sample[];
  readonly examples: string[];
  readonly steps: readonly RateStep[];
}

/**
 * Prefill, then one vegeta attack per step on targets cut from one seeded mixed stream, then every result
 * checked against the request that caused it (matched by the X-Request-Id the service echoes).
 */
async function vegetaRun(
  plan: TestPlan,
  steps: readonly RateStep[],
  settings: LoadSettings,
  outDir: string,
): Promise<VegetaRunResult> {
  const record = recordOptionsOf(settings, Date.now());
  let known: RecordBody[] = [];
  if (settings.readRatio > 0) {
    known = prefillRecords(settings.seed, settings.prefill, record);
    await prefill(known, settings, record.runTag);
    say(`prefilled ${known.length} records (sources load.${record.runTag}.*)`);
  }
  const mix = { ...DEFAULT_MIX, readRatio: settings.readRatio, batchSize: settings.batchSize, known, record };
  const stream = createMixedStream(
    createRng(hashSeed(settings.seed, 'local')),
    mix,
    createRequestIds(record.runTag, 'vg'),
  );
  const specs = new Map<string, RequestSpec>();
  const files: string[] = [];
  for (const [index, step] of steps.entries()) {
    const count = Math.min(MAX_TARGETS_PER_STEP, Math.ceil(step.rate * step.durationS));
    const targets = take(stream, count);
    for (const spec of targets) specs.set(spec.headers['x-request-id'] ?? '', spec);
    const targetsFile = join(outDir, `targets-${index}.jsonl`);
    const results = join(outDir, `results-${index}.bin`);
    await writeTargets(
      targetsFile,
      targets.map((spec) => toTarget(spec, settings)),
    );
    say(`step ${index + 1}/${steps.length}: ${step.rate} req/s for ${step.durationS} s`);
    await attack({
      targets: targetsFile,
      output: results,
      rate: step.rate,
      durationS: step.durationS,
      timeoutS: settings.timeoutS,
      maxWorkers: settings.maxVus,
      name: `${plan.name}-${index}`,
    });
    files.push(results);
  }
  const vegetaReport = await report(files);
  writeFileSync(join(outDir, 'report.json'), `${JSON.stringify(vegetaReport, null, 2)}\n`);
  writeFileSync(join(outDir, 'plot.html'), await plot(files, `${plan.name} ${relative(ROOT, outDir)}`));

  const timed: Array<{ at: number; sample: Sample }> = [];
  const examples: string[] = [];
  await eachResult(files, (result) => {
    const headers = normalizeHeaders(result.headers);
    const spec = specs.get(headers['x-request-id'] ?? '');
    const durationMs = result.latency / 1e6;
    if (spec === undefined) {
      // No echoed id: a transport error, or an answer from something that is not the service.
      const reason = result.error || `status ${result.code} without the request's x-request-id`;
      if (examples.length < MAX_EXAMPLES) examples.push(`${result.method} ${result.url}: ${reason}`);
      const kind = result.method === 'POST' ? 'write' : 'read';
      timed.push({
        at: Date.parse(result.timestamp),
        sample: { durationMs, failed: true, ok: false, shed: false, tags: { kind } },
      });
      return;
    }
    const exchange = { status: result.code, headers, body: Buffer.from(result.body ?? '', 'base64').toString('utf8') };
    const failures = result.code === 0 ? [result.error] : checkExchange(spec, exchange, { allowShed: plan.allowShed });
    if (failures.length > 0 && examples.length < MAX_EXAMPLES) {
      examples.push(`${spec.method} ${spec.path} (${spec.name}): ${failures.join('; ')}`);
    }
    timed.push({
      at: Date.parse(result.timestamp),
      sample: sampleOf(spec, result.code, durationMs, failures.length === 0, plan),
    });
  });
  // The soak's phases: first and last fifth of the run by send time, as the k6 script tags them.
  const first = timed.reduce((min, t) => Math.min(min, t.at), Number.POSITIVE_INFINITY);
  const span = Math.max(1, timed.reduce((max, t) => Math.max(max, t.at), first) - first);
  const samples = timed.map(({ at, sample }) => ({
    ...sample,
    tags: { ...sample.tags, phase: phaseOf((at - first) / span) },
  }));
  return { report: vegetaReport, samples, examples, steps };
}

function sampleOf(spec: RequestSpec, status: number, durationMs: number, ok: boolean, plan: TestPlan): Sample {
  const shed = isShed({ status });
  const expected = status === expectedStatus(spec.expect) || (plan.allowShed && shed);
  const kind = spec.method === 'POST' ? 'write' : spec.path.startsWith('/data') ? 'read' : 'other';
  return { durationMs, failed: !expected, ok, shed, tags: { name: spec.name, kind } };
}

function judge(
  plan: TestPlan,
  settings: LoadSettings,
  samples: readonly Sample[],
  examples: readonly string[],
  vegetaReport: VegetaReport,
  steps: readonly RateStep[],
): Omit<RunSummary, 'run' | 'outDir'> {
  const planned = Math.round(steps.reduce((sum, step) => sum + step.rate * step.durationS, 0));
  // vegeta never drops a request, but it falls behind when it runs out of workers: count the shortfall as k6
  // counts dropped iterations.
  const dropped = Math.max(0, planned - vegetaReport.requests - Math.ceil(planned * 0.01));
  const thresholds = evaluateThresholds(plan.thresholds, samples, dropped);
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  return {
    ok: thresholds.every((t) => t.ok),
    target: { rps: settings.targetRps, steps, planned_requests: planned },
    vegeta: {
      requests: vegetaReport.requests,
      rate: round(vegetaReport.rate),
      throughput: round(vegetaReport.throughput),
      p50_ms: ms(vegetaReport.latencies['50th']),
      p90_ms: ms(vegetaReport.latencies['90th']),
      p99_ms: ms(vegetaReport.latencies['99th']),
      max_ms: ms(vegetaReport.latencies.max),
      error_rate: round(1 - vegetaReport.success, 6),
      status_codes: vegetaReport.status_codes,
      errors: (vegetaReport.errors ?? []).slice(0, 10),
    },
    contract: {
      checked: samples.length,
      failed: samples.filter((s) => !s.ok).length,
      examples: examples.slice(0, MAX_EXAMPLES),
    },
    thresholds,
  };
}

function drift(samples: readonly Sample[], before: readonly ResidentMemory[], after: readonly ResidentMemory[]) {
  const p99 = (phase: string) =>
    percentile(
      samples
        .filter((s) => s.tags.phase === phase)
        .map((s) => s.durationMs)
        .sort((a, b) => a - b),
      99,
    );
  const early = p99('early');
  const late = p99('late');
  return {
    p99_early_ms: round(early),
    p99_late_ms: round(late),
    p99_ratio: early > 0 ? round(late / early) : null,
    memory: describeMemoryDrift(before, after),
  };
}

/** The run's outcome as a few lines for the terminal. */
export function describe(summary: RunSummary): string {
  const lines = [`load:${summary.run} → ${relative(process.cwd(), summary.outDir) || '.'}`];
  const v = summary.vegeta as Record<string, unknown> | undefined;
  if (v !== undefined) {
    lines.push(
      `  vegeta: ${v.requests} requests, rate ${v.rate}/s, throughput ${v.throughput}/s, p50 ${v.p50_ms} ms, p90 ${v.p90_ms} ms, p99 ${v.p99_ms} ms, max ${v.max_ms} ms, errors ${(Number(v.error_rate) * 100).toFixed(2)} %, codes ${JSON.stringify(v.status_codes)}`,
    );
  }
  const w = summary.wrk as Record<string, unknown> | undefined;
  if (w !== undefined) {
    lines.push(
      `  wrk: ${w.requests} requests, ${w.rps} req/s, p50 ${w.p50_ms} ms, p90 ${w.p90_ms} ms, p99 ${w.p99_ms} ms, non-2xx/3xx ${w.non_2xx}, socket errors ${w.socket_errors}`,
    );
  }
  const c = summary.contract as { checked: number; failed: number; examples: string[] } | undefined;
  if (c !== undefined) {
    lines.push(`  contract: ${c.checked} responses checked, ${c.failed} failed`);
    for (const example of c.examples.slice(0, 5)) lines.push(`    ✗ ${example}`);
  }
  const d = summary.drift as
    | { p99_early_ms: number; p99_late_ms: number; p99_ratio: number | null; memory: string[] }
    | undefined;
  if (d !== undefined) {
    lines.push(
      `  drift: p99 first fifth ${d.p99_early_ms} ms, last fifth ${d.p99_late_ms} ms (× ${d.p99_ratio ?? '–'})`,
    );
    for (const line of d.memory) lines.push(`    ${line}`);
  }
  for (const t of (summary.thresholds as ThresholdResult[] | undefined) ?? []) {
    lines.push(`  ${t.ok ? '✓' : '✗'} ${t.metric} ${t.rule} (${t.value === null ? 'no data' : round(t.value, 4)})`);
  }
  lines.push(summary.ok ? '  passed' : '  FAILED');
  return lines.join('\n');
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

function stamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
