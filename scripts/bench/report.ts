/**
 * The figures of a bench run: entries (bench-results/latest.json's `entries`), ratios to their baselines, the
 * printed table, and issue 9's targets judged on the figures of the same run.
 */
import { barChart, lineChart, PERCENTILE_TICKS, page, percentileAxis } from './charts.ts';
import type { ByGroup } from './cost.ts';

export type Kind = 'ceiling' | 'naive' | 'service' | 'startup';

export interface Entry {
  readonly name: string;
  readonly kind: Kind;
  /** What produced the load: wrk, pgbench, redis-benchmark. */
  readonly tool?: string;
  readonly connections?: number;
  /** Requests (or transactions) per second; a batch of 100 counts once. Null for startup entries. */
  rps: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  /** [percentile, ms] of the latency distribution, for the report's plots (wrk cases). */
  latency_ms?: ReadonlyArray<readonly [number, number]>;
  rows_per_s?: number;
  requests?: number;
  seconds?: number;
  errors?: number;
  /** The entry this one is compared with, and this entry's rate ÷ the baseline's (rows/s when both have it). */
  baseline: string | null;
  ratio: number | null;
  /** CPU µs per request of each group, of all of them (`machine_share`) and of the load generator. */
  cpu_us_per_request?: ByGroup & { machine_share: number; load_generator: number };
  /** The same of the baseline, copied here so that each line carries its comparison. */
  baseline_cpu_us_per_request?: { server: number; machine_share: number };
  /** Cores busy machine-wide during the window (other users included). */
  busy_cores?: number;
  /** Seconds the window went on after the load stopped, until the relay had published every event. */
  drain_seconds?: number;
  /** Peak VmRSS of the serving process (startup entries: over all its cases, plus `rss_idle_mib`). */
  rss_mib?: number;
  rss_idle_mib?: number;
  /** Startup entries: spawn → first answer, and the CPU used until then, per start. */
  samples_ms?: number[];
  cpu_ms?: number[];
  note?: string;
}

export const round = (value: number, digits = 2): number => Math.round(value * 10 ** digits) / 10 ** digits;

/** Fills `ratio` and `baseline_cpu_us_per_request` from each entry's baseline. */
export function compare(entries: Entry[]): void {
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const entry of entries) {
    const base = entry.baseline === null ? undefined : byName.get(entry.baseline);
    if (base === undefined) continue;
    const rows = entry.rows_per_s !== undefined && base.rows_per_s !== undefined;
    const [mine, theirs] = rows ? [entry.rows_per_s, base.rows_per_s] : [entry.rps, base.rps];
    entry.ratio = mine && theirs ? round(mine / theirs, 3) : null;
    if (base.cpu_us_per_request !== undefined) {
      const { server, machine_share } = base.cpu_us_per_request;
      entry.baseline_cpu_us_per_request = { server, machine_share };
    }
  }
}

/** Aligned columns: text columns left, numbers right. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.every((r) => /^[-\d.,%×]*$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n').trimEnd();
}

const fmt = (value: number | null | undefined, digits = 0): string =>
  value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);

export function table(entries: readonly Entry[]): string {
  return formatTable(
    [
      'name',
      'conns',
      'rps',
      'p50_ms',
      'p99_ms',
      'rows/s',
      'baseline',
      'ratio',
      'srv_us',
      'mach_us',
      'base_srv',
      'base_mach',
      'gen_us',
      'rss_MiB',
      'busy',
      'errors',
    ],
    entries
      .filter((e) => e.kind !== 'startup')
      .map((e) => [
        e.name,
        fmt(e.connections),
        fmt(e.rps),
        fmt(e.p50_ms, 2),
        fmt(e.p99_ms, 2),
        fmt(e.rows_per_s),
        e.baseline ?? '-',
        fmt(e.ratio, 2),
        fmt(e.cpu_us_per_request?.server || undefined),
        fmt(e.cpu_us_per_request?.machine_share),
        fmt(e.baseline_cpu_us_per_request?.server || undefined),
        fmt(e.baseline_cpu_us_per_request?.machine_share),
        fmt(e.cpu_us_per_request?.load_generator),
        fmt(e.rss_mib),
        fmt(e.busy_cores, 2),
        fmt(e.errors),
      ]),
  );
}

/** One line per bundle: each start's wall time and own CPU, and its RSS idle and at peak. */
export const startupLines = (entries: readonly Entry[]): string =>
  entries
    .filter((e) => e.kind === 'startup')
    .map((e) => {
      const starts = (e.samples_ms ?? []).map((ms, i) => `${Math.round(ms)} ms (${e.cpu_ms?.[i] ?? '?'} ms CPU)`);
      return `  ${e.name}: ${starts.join(', ')}; RSS ${fmt(e.rss_idle_mib)} MiB idle, ${fmt(e.rss_mib)} MiB peak under load`;
    })
    .join('\n');

export interface Verdict {
  readonly target: string;
  /** null: a figure is missing. */
  readonly pass: boolean | null;
  /** The measured ratio (or figure) against the target. */
  readonly measured: string;
  /** The figure as a share of its goal, ≥ 1 when it is met (the report's bars); null when not measured. */
  readonly score: number | null;
}

/** Issue 9's targets, judged on this run's figures. */
export function verdicts(entries: readonly Entry[]): Verdict[] {
  const get = (name: string) => entries.find((e) => e.name === name);
  const out: Verdict[] = [];
  const judge = (target: string, ratio: number | undefined, goal: number, atMost: boolean, extra = '') => {
    const ok = ratio === undefined || !Number.isFinite(ratio) ? null : atMost ? ratio <= goal : ratio >= goal;
    const score = ok === null || ratio === undefined ? null : round(atMost ? goal / ratio : ratio / goal, 3);
    out.push({ target, pass: ok, measured: ok === null ? 'not measured' : `${ratio?.toFixed(2)}×${extra}`, score });
  };
  const rate = (a: string, b: string, rows = false) => {
    const [x, y] = [get(a), get(b)];
    return rows ? (x?.rows_per_s ?? 0) / (y?.rows_per_s ?? 0) : (x?.rps ?? 0) / (y?.rps ?? Number.NaN) || undefined;
  };
  const cpu = (a: string, b: string, key: 'server' | 'machine_share') =>
    (get(a)?.cpu_us_per_request?.[key] ?? Number.NaN) / (get(b)?.cpu_us_per_request?.[key] ?? Number.NaN);
  for (const [one, naive, conns] of [
    ['post-one', 'naive-post', 32],
    ['post-one-128', 'naive-post-128', 128],
  ] as const) {
    const p99 = get(one)?.p99_ms ?? Number.NaN;
    const ratio = rate(one, naive);
    const target = `${one} ≥ 2× ${naive} req/s (${conns} connections), p99 < 50 ms`;
    out.push({
      target,
      pass: ratio === undefined ? null : ratio >= 2 && p99 < 50,
      measured: ratio === undefined ? 'not measured' : `${ratio.toFixed(2)}×, p99 ${p99.toFixed(1)} ms`,
      score: ratio === undefined ? null : round(Math.min(ratio / 2, 50 / p99), 3),
    });
  }
  judge('post-one server CPU/request ≤ naive-post', cpu('post-one', 'naive-post', 'server'), 1, true);
  judge('get-cold server CPU/request ≤ naive-get', cpu('get-cold', 'naive-get', 'server'), 1, true);
  judge('post-one machine CPU/record ≤ 0.6× naive-post', cpu('post-one', 'naive-post', 'machine_share'), 0.6, true);
  judge('get-hot ≥ 0.5× node-hello req/s', rate('get-hot', 'node-hello'), 0.5, false);
  judge('get-cold ≥ 0.7× naive-get req/s', rate('get-cold', 'naive-get'), 0.7, false);
  judge('list-page ≥ 1× naive-list req/s', rate('list-page', 'naive-list'), 1, false);
  judge('post-batch-100 ≥ 0.5× pg-insert-100 rows/s', rate('post-batch-100', 'pg-insert-100', true), 0.5, false);
  for (const fn of ['ingest', 'query']) {
    const start = get(`start-${fn}`);
    const rss = start?.rss_mib;
    out.push({
      target: `${fn} peak RSS < 256 MiB in every case`,
      pass: rss === undefined ? null : rss < 256,
      measured: rss === undefined ? 'not measured' : `${rss.toFixed(0)} MiB (${(rss / 256).toFixed(2)}×)`,
      score: rss === undefined ? null : round(256 / rss, 3),
    });
    const ms = start?.p50_ms ?? undefined;
    out.push({
      target: `${fn} start → first answer ≤ 200 ms`,
      pass: ms === undefined ? null : ms <= 200,
      measured: ms === undefined ? 'not measured' : `${ms.toFixed(0)} ms median (${(ms / 200).toFixed(2)}×)`,
      score: ms === undefined ? null : round(200 / ms, 3),
    });
  }
  return out;
}

export const verdictLines = (list: readonly Verdict[]): string =>
  list
    .map((v) => `  ${v.pass === null ? '?   ' : v.pass ? 'PASS' : 'MISS'}  ${v.target.padEnd(62)} ${v.measured}`)
    .join('\n');

/** The run as a page: the targets as bars (share of each goal), then each case's latency by percentile. */
export function reportHtml(entries: readonly Entry[], targets: readonly Verdict[], context: string): string {
  const bars = targets.map((v) => ({
    label: v.target,
    score: v.score,
    caption: `${v.pass === null ? '?' : v.pass ? 'PASS' : 'MISS'} ${v.measured}`,
    pass: v.pass,
  }));
  const withLatency = entries.filter((e) => (e.latency_ms?.length ?? 0) > 0);
  const latency = (kinds: readonly Kind[], title: string) =>
    lineChart({
      title,
      xLabel: 'percentile (HdrHistogram axis: 1/(1−p))',
      yLabel: 'latency, ms (log)',
      logY: true,
      xTicks: PERCENTILE_TICKS,
      series: withLatency
        .filter((e) => kinds.includes(e.kind))
        .map((e) => ({
          name: `${e.name} (${e.connections ?? '?'} conn)`,
          points: (e.latency_ms ?? []).map(([p, ms]) => [percentileAxis(p), ms] as const),
        })),
    });
  const ratios = entries
    .filter((e) => e.ratio !== null && e.baseline !== null)
    .map((e) => ({ label: `${e.name} ÷ ${e.baseline}`, score: e.ratio, caption: `${e.ratio}×`, pass: null }));
  return page('npm run bench', context, [
    barChart('Targets: each figure as a share of its goal (the dashed line)', bars),
    barChart('Rate of each case ÷ its baseline (same run)', ratios, '1×'),
    latency(['service'], 'The service: latency by percentile (wrk, measured window)'),
    latency(['naive', 'ceiling'], 'Baselines: latency by percentile'),
  ]);
}
