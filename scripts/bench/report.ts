/**
 * Results of a bench run: the entries (the JSON array of bench-results/latest.json), the ratios to their
 * baselines, the printed table, and the targets judged against the figures of the same run.
 */

export type Kind = 'ceiling' | 'naive' | 'service' | 'startup';

export interface Entry {
  readonly name: string;
  /** Requests (or transactions) per second; a batch of 100 counts once. Null for startup entries. */
  rps: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  /** The entry this one is compared with, or null. */
  baseline: string | null;
  /** This entry's rate ÷ the baseline's (rows/s when both have `rows_per_s`). */
  ratio: number | null;
  readonly kind: Kind;
  /** What produced the load: wrk, pgbench, redis-benchmark. */
  readonly tool?: string;
  rows_per_s?: number;
  requests?: number;
  seconds?: number;
  errors?: number;
  /** CPU in cores (CPU seconds ÷ wall seconds) during the measured interval. */
  cpu_cores?: {
    load_generator: number;
    server?: number;
    postgres?: number;
    machine_busy: number;
  };
  /** Server process CPU per request in µs (the Node cost of one request). */
  server_cpu_us_per_request?: number;
  /** Highest VmRSS of the serving process during the case (startup entries: over all its cases). */
  rss_mib?: number;
  /** VmRSS right after start, before any load (startup entries). */
  rss_idle_mib?: number;
  /** Start → first answer of each start (startup entries). */
  samples_ms?: number[];
  /** CPU the process used until its first answer, per start (startup entries). */
  cpu_ms?: number[];
  /** Cores busy machine-wide during each start (startup entries). */
  busy_cores?: number[];
  note?: string;
}

/** Fills `ratio` from each entry's baseline; a missing or zero baseline leaves it null. */
export function computeRatios(entries: Entry[]): void {
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const entry of entries) {
    const base = entry.baseline === null ? undefined : byName.get(entry.baseline);
    if (base === undefined) {
      entry.ratio = null;
      continue;
    }
    const useRows = entry.rows_per_s !== undefined && base.rows_per_s !== undefined;
    const mine = useRows ? entry.rows_per_s : entry.rps;
    const theirs = useRows ? base.rows_per_s : base.rps;
    entry.ratio = mine && theirs ? round(mine / theirs, 3) : null;
  }
}

export const round = (value: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

const fmt = (value: number | null | undefined, digits = 2): string =>
  value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);

/** The printed table: the six JSON fields, then CPU and memory notes. */
export function table(entries: readonly Entry[], cores: number): string {
  const header = [
    'name',
    'rps',
    'p50_ms',
    'p99_ms',
    'baseline',
    'ratio',
    'rows/s',
    'gen_cpu',
    'srv_us/req',
    'rss_MiB',
    'busy',
    'errors',
  ];
  const rows = entries.map((e) => [
    e.name,
    e.rps === null ? '-' : Math.round(e.rps).toString(),
    fmt(e.p50_ms),
    fmt(e.p99_ms),
    e.baseline ?? '-',
    fmt(e.ratio),
    e.rows_per_s === undefined ? '' : Math.round(e.rows_per_s).toString(),
    e.cpu_cores ? `${Math.round((e.cpu_cores.load_generator / cores) * 100)}%` : '',
    e.server_cpu_us_per_request === undefined ? '' : Math.round(e.server_cpu_us_per_request).toString(),
    e.rss_mib === undefined ? '' : e.rss_mib.toFixed(0),
    e.cpu_cores ? e.cpu_cores.machine_busy.toFixed(2) : '',
    e.errors === undefined ? '' : String(e.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export interface Verdict {
  readonly target: string;
  readonly met: boolean | null;
  readonly measured: string;
}

/** The targets, judged on this run's figures (null = could not be judged: a figure is missing). */
export function verdicts(entries: readonly Entry[]): Verdict[] {
  const get = (name: string) => entries.find((e) => e.name === name);
  const out: Verdict[] = [];
  const postOne = get('post-one');
  const naivePost = get('naive-post');
  if (postOne?.rps != null && naivePost?.rps != null && postOne.p99_ms != null) {
    const ratio = postOne.rps / naivePost.rps;
    out.push({
      target: 'post-one ≥ 2× naive-post rps, p99 < 50 ms',
      met: ratio >= 2 && postOne.p99_ms < 50,
      measured: `${ratio.toFixed(2)}×, p99 ${postOne.p99_ms.toFixed(1)} ms`,
    });
  } else {
    out.push({ target: 'post-one ≥ 2× naive-post rps, p99 < 50 ms', met: null, measured: 'not measured' });
  }
  const batch = get('post-batch-100');
  const pg100 = get('pg-insert-100');
  if (batch?.rows_per_s !== undefined && pg100?.rows_per_s !== undefined) {
    const ratio = batch.rows_per_s / pg100.rows_per_s;
    out.push({
      target: 'post-batch-100 rows/s ≥ 0.5× pg-insert-100 rows/s',
      met: ratio >= 0.5,
      measured: `${ratio.toFixed(2)}×`,
    });
  } else {
    out.push({ target: 'post-batch-100 rows/s ≥ 0.5× pg-insert-100 rows/s', met: null, measured: 'not measured' });
  }
  const hot = get('get-hot');
  const hello = get('node-hello');
  if (hot?.rps != null && hello?.rps != null) {
    const ratio = hot.rps / hello.rps;
    out.push({ target: 'get-hot ≥ 0.5× node-hello rps', met: ratio >= 0.5, measured: `${ratio.toFixed(2)}×` });
  } else {
    out.push({ target: 'get-hot ≥ 0.5× node-hello rps', met: null, measured: 'not measured' });
  }
  for (const fn of ['ingest', 'query']) {
    const startup = get(`start-${fn}`);
    const rss = startup?.rss_mib;
    out.push({
      target: `${fn} RSS at full load < 256 MiB`,
      met: rss === undefined ? null : rss < 256,
      measured: rss === undefined ? 'not measured' : `${rss.toFixed(0)} MiB`,
    });
    const ms = startup?.p50_ms;
    out.push({
      target: `${fn} start → first answer ≤ 300 ms`,
      met: ms == null ? null : ms <= 300,
      measured: ms == null ? 'not measured' : `${ms.toFixed(0)} ms (median of ${startup?.samples_ms?.length ?? 0})`,
    });
  }
  return out;
}

export function verdictLines(list: readonly Verdict[]): string {
  return list
    .map((v) => `  ${v.met === null ? '?     ' : v.met ? 'met   ' : 'MISSED'}  ${v.target.padEnd(52)} ${v.measured}`)
    .join('\n');
}

/** One line per bundle: every start's wall time, the CPU it used, and how busy the machine was meanwhile. */
export function startupLines(entries: readonly Entry[]): string {
  return entries
    .filter((e) => e.kind === 'startup')
    .map((e) => {
      const starts = (e.samples_ms ?? []).map(
        (ms, i) => `${Math.round(ms)} ms (${e.cpu_ms?.[i] ?? '?'} CPU, busy ${e.busy_cores?.[i]?.toFixed(1) ?? '?'})`,
      );
      return `  ${e.name}: ${starts.join(', ')}; RSS ${e.rss_idle_mib?.toFixed(0) ?? '?'} MiB idle, ${e.rss_mib?.toFixed(0) ?? '?'} MiB peak under load`;
    })
    .join('\n');
}
