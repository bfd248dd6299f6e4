/**
 * Reading what observability/ and docs/observability.md declare, for the tests that hold them to the code: the
 * Prometheus text format's `# TYPE` lines, the metric tables of the docs, the metric names a PromQL expression
 * selects, a Grafana dashboard's expressions, the alert unit tests of a promtool test file, and every metric
 * family the functions export (createMetrics' registry with every series their main.ts files register).
 */
import { createMetrics } from '#lib/observability';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** `# TYPE` lines of a Prometheus text exposition: metric family name → type. */
export function parseTypes(exposition: string): Map<string, MetricType> {
  return new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as MetricType]));
}

/** Rows of the metric tables in docs/observability.md: `| \`name\` | type | exported by, … |`. */
export function documentedMetrics(markdown: string): Map<string, { type: MetricType; exportedBy: string[] }> {
  const rows = markdown.matchAll(
    /^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|\s*([^|]*)\|/gm,
  );
  return new Map(
    [...rows].map((m) => [
      m[1] as string,
      {
        type: m[2] as MetricType,
        exportedBy: (m[3] as string)
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      },
    ]),
  );
}

/**
 * Every metric family the functions can export, with its type: createMetrics' registry with every series that
 * functions/{ingest,query,relay}/main.ts register (dummy readers), rendered without starting anything; prom-client's
 * process_* and nodejs_* defaults included.
 */
export async function exportedMetricTypes(): Promise<Map<string, MetricType>> {
  const metrics = createMetrics({ service: 'check', revision: 'check-00001' });
  metrics.pool('primary', () => ({ used: 1, free: 1, pending: 0, max: 2 }));
  metrics.pool('replica', () => ({ used: 1, free: 1, pending: 0, max: 2 }));
  for (const dependency of ['postgres', 'kafka']) metrics.dependency(dependency, () => true);
  metrics.cache(() => ({ hits: 1, misses: 1, errorsOrSkips: 0, breaker: 'closed', connected: true }));
  metrics.relay(() => ({ published: 1, errors: 0, deadLettered: 0 }));
  metrics.outbox(async () => ({ rows: 0, oldestAgeMs: 0, deadLetters: 0 }));
  metrics.rateLimited(() => 0);
  metrics.replica(() => ({ lagSeconds: 0.5, listReads: { primary: 0, replica: 1 } }));
  metrics.archive(async () => ({ verifiedDays: 1, bytes: 1, lastSuccessAgeSeconds: 1, backlogDays: 0 }));
  metrics.observeRequest({ route: 'POST /data', method: 'POST', status: 201, durationSeconds: 0.01 });
  metrics.observeBatch(1, 1);
  return parseTypes(await metrics.registry.metrics());
}

/** The sample names a family of the given type produces (a histogram's _bucket, _sum and _count…). */
export const sampleNames = (family: string, type: MetricType): string[] =>
  type === 'histogram'
    ? [`${family}_bucket`, `${family}_sum`, `${family}_count`]
    : type === 'summary'
      ? [family, `${family}_sum`, `${family}_count`]
      : [family];

const NOT_METRICS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or']);
for (const word of ['unless', 'offset', 'inf', 'nan']) NOT_METRICS.add(word);

/** Grafana's variables replaced by values PromQL accepts (for promtool and the name extraction). */
export const substituteGrafanaVariables = (expr: string): string =>
  expr
    .replace(/\$\{?__(?:rate_interval|interval|range)\}?/g, '5m')
    .replace(/\$\{?__(?:interval_ms|range_s|range_ms)\}?/g, '300')
    .replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*/g, '.*');

/** The metric names a PromQL expression selects (functions, keywords, labels, strings and durations skipped). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/#.*$/gm, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(\d*\.?\d+(?:[eE][+-]?\d+)?[A-Za-z]*)|([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] !== undefined && m[3] === undefined && !NOT_METRICS.has(m[2].toLowerCase())) names.add(m[2]);
  }
  return [...names];
}

interface Panel {
  readonly id?: unknown;
  readonly title?: unknown;
  readonly type?: unknown;
  readonly gridPos?: unknown;
  readonly targets?: ReadonlyArray<{ readonly expr?: unknown }>;
  readonly panels?: readonly Panel[];
}
export interface Dashboard {
  readonly title?: unknown;
  readonly uid?: unknown;
  readonly schemaVersion?: unknown;
  readonly panels?: readonly Panel[];
  readonly templating?: { readonly list?: ReadonlyArray<{ type?: unknown; name?: unknown; query?: unknown }> };
}

const allPanels = (panels: readonly Panel[] = []): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels)]);

/** Every PromQL expression of a dashboard (panel targets, rows and nested panels too, query variables). */
export function dashboardExpressions(board: Dashboard): Array<{ where: string; expr: string }> {
  const found = allPanels(board.panels).flatMap((panel) =>
    (panel.targets ?? []).flatMap((t, i) =>
      typeof t.expr === 'string' ? [{ where: `panel "${String(panel.title)}" target ${i}`, expr: t.expr }] : [],
    ),
  );
  for (const variable of board.templating?.list ?? []) {
    const query = variable.query as string | { query?: string } | undefined;
    const text = typeof query === 'string' ? query : query?.query;
    if (variable.type !== 'query' || typeof text !== 'string') continue;
    // label_values(metric{…}, label) is Grafana's, not PromQL: its first argument is.
    const labelValues = /^label_values\((.*),\s*\w+\)$/.exec(text.trim());
    found.push({ where: `variable $${String(variable.name)}`, expr: labelValues?.[1] ?? text });
  }
  return found;
}

/** What Grafana needs to import a dashboard and the project relies on. */
export function dashboardProblems(board: Dashboard): string[] {
  const problems: string[] = [];
  if (typeof board.title !== 'string' || board.title === '') problems.push('no title');
  if (typeof board.uid !== 'string' || board.uid === '') problems.push('no uid');
  if (typeof board.schemaVersion !== 'number') problems.push('no schemaVersion');
  const panels = allPanels(board.panels);
  if (panels.length === 0) problems.push('no panels');
  const ids = new Set<unknown>();
  for (const panel of panels) {
    const title = `panel "${String(panel.title)}"`;
    if (typeof panel.id !== 'number') problems.push(`${title} has no numeric id`);
    else if (ids.has(panel.id)) problems.push(`${title} reuses id ${panel.id}`);
    ids.add(panel.id);
    if (typeof panel.gridPos !== 'object' || panel.gridPos === null) problems.push(`${title} has no gridPos`);
    if (panel.type === 'row') continue;
    if ((panel.targets ?? []).length === 0) problems.push(`${title} has no targets`);
    for (const t of panel.targets ?? []) {
      if (typeof t.expr !== 'string' || t.expr.trim() === '') problems.push(`${title}: empty expr`);
    }
  }
  return problems;
}

/** The PrometheusRule manifest for a rule file: its `groups:` onwards, under `spec:`. */
export function prometheusRuleFor(rulesText: string, source: string): string {
  const lines = rulesText.split('\n');
  const body = lines
    .slice(lines.findIndex((line) => line.startsWith('groups:')))
    .map((line) => (line === '' ? '' : `  ${line}`))
    .join('\n')
    .trimEnd();
  return [
    `# GENERATED from ${source} by \`OBSERVABILITY_WRITE=1 npm run observability:check\`: edit that file, not this one.`,
    '# The same rules for the Prometheus Operator (selected by the Prometheus in prometheus.yaml).',
    'apiVersion: monitoring.coreos.com/v1',
    'kind: PrometheusRule',
    'metadata:',
    '  name: data-service',
    '  namespace: data-service',
    '  labels:',
    '    app.kubernetes.io/part-of: data-service',
    'spec:',
    body,
    '',
  ].join('\n');
}

/** A scrape config with every `kubernetes_sd_configs:` block replaced by a static target of the same indentation. */
export function withStaticTargets(config: string): string {
  const lines = config.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const match = /^(\s*)kubernetes_sd_configs:\s*$/.exec(lines[i] as string);
    if (!match) {
      out.push(lines[i] as string);
      continue;
    }
    const indent = (match[1] as string).length;
    out.push(`${' '.repeat(indent)}static_configs:`, `${' '.repeat(indent)}  - targets: ["kubernetes-sd.invalid:443"]`);
    while (i + 1 < lines.length) {
      const next = lines[i + 1] as string;
      if (next.trim() !== '' && next.length - next.trimStart().length <= indent) break;
      i++;
    }
  }
  return out.join('\n');
}
