/**
 * `npm run observability:check` — validates observability/ offline in a few seconds, exiting non-zero on any finding:
 *
 * - promtool (Debian's `prometheus` package; installed with apt-get when missing and we are root, with the
 *   Prometheus server it brings kept stopped): `check rules` on every rule file, `test rules` on every unit test
 *   file, `check config --syntax-only` on the scrape config; every dashboard expression is also fed to
 *   `check rules` (as recording rules), so that the real PromQL parser judges it;
 * - every alert has a unit test that fires it and one that shows it silent;
 * - every metric name in a rule or dashboard expression is one the service exports (listed by rendering
 *   createMetrics' registry with every series the functions' main.ts files register, nothing started), a series
 *   a rule of ours records, or an explicitly allowed Knative / Prometheus metric;
 * - the max-scale recording rule equals `autoscaling.knative.dev/max-scale` in knative/base (when knative/ exists);
 * - observability/kubernetes/prometheus-rule.yaml is the rule file wrapped in a PrometheusRule (`--write`
 *   regenerates it);
 * - docs/observability.md documents every exported `data_service_*` metric with its type, and every alert.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createMetrics } from '#lib/observability';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OBSERVABILITY = join(ROOT, 'observability');
const RULES_DIR = join(OBSERVABILITY, 'prometheus', 'rules');
const TESTS_DIR = join(OBSERVABILITY, 'prometheus', 'tests');
const SCRAPE_CONFIG = join(OBSERVABILITY, 'prometheus', 'prometheus.yml');
const DASHBOARDS_DIR = join(OBSERVABILITY, 'grafana');
const PROMETHEUS_RULE = join(OBSERVABILITY, 'kubernetes', 'prometheus-rule.yaml');
const DOCS = join(ROOT, 'docs', 'observability.md');
const KNATIVE_BASE = join(ROOT, 'knative', 'base');
const MAX_SCALE_RECORD = 'data_service:knative_max_scale';

/**
 * Metrics the dashboard and rules may use that the service itself does not export: the Knative autoscaler's
 * (Knative Serving 1.15, scraped from knative-serving/autoscaler:http-metrics; labels namespace_name,
 * configuration_name, revision_name, service_name). Add one here only with the reason it exists.
 */
export const ALLOWED_EXTERNAL_METRICS: Readonly<Record<string, string>> = {
  autoscaler_desired_pods: 'Knative autoscaler: pods it wants for a revision (clamped to max-scale)',
  autoscaler_actual_pods: 'Knative autoscaler: pods of a revision that are ready',
};

const log = (message: string) => process.stderr.write(`[observability:check] ${message}\n`);

// ---------------------------------------------------------------------------------------------------------------
// What the service exports

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** `# TYPE` lines of a Prometheus text exposition: metric family name → type. */
export function parseTypes(exposition: string): Map<string, MetricType> {
  const types = new Map<string, MetricType>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    types.set(match[1] as string, match[2] as MetricType);
  }
  return types;
}

/**
 * Every metric family the functions can export, with its type: createMetrics' registry with every series that
 * functions/{ingest,query,relay}/main.ts register (with dummy readers), rendered without starting anything.
 * Includes prom-client's process_* and nodejs_* defaults, which the registry collects itself.
 */
export async function exportedMetricTypes(): Promise<Map<string, MetricType>> {
  const metrics = createMetrics({ service: 'check', revision: 'check-00001' });
  // As functions/ingest/main.ts and functions/query/main.ts (the replica pool only with DATABASE_READ_URL).
  metrics.pool('primary', () => ({ used: 1, free: 1, pending: 0, max: 2 }));
  metrics.pool('replica', () => ({ used: 1, free: 1, pending: 0, max: 2 }));
  for (const dependency of ['postgres', 'kafka']) metrics.dependency(dependency, () => true);
  metrics.cache(() => ({ hits: 1, misses: 1, errorsOrSkips: 0, breaker: 'closed', connected: true }));
  // As functions/ingest/main.ts and functions/relay/main.ts.
  metrics.relay(() => ({ published: 1, errors: 0 }));
  metrics.outbox(async () => ({ rows: 0, oldestAgeMs: 0 }));
  // The runtime's `observe` hook and the group commit.
  metrics.observeRequest({ route: 'POST /data', method: 'POST', status: 201, durationSeconds: 0.01 });
  metrics.observeBatch(1, 1);
  return parseTypes(await metrics.registry.metrics());
}

/** The sample names a family of the given type produces (a histogram's _bucket, _sum and _count…). */
export function sampleNames(family: string, type: MetricType): string[] {
  if (type === 'histogram') return [`${family}_bucket`, `${family}_sum`, `${family}_count`];
  if (type === 'summary') return [family, `${family}_sum`, `${family}_count`];
  return [family];
}

// ---------------------------------------------------------------------------------------------------------------
// PromQL and YAML, just enough of them

const NOT_METRICS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** Grafana's variables replaced by values PromQL accepts (for the syntax check and the name extraction). */
export function substituteGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$\{?__(?:rate_interval|interval|range)\}?/g, '5m')
    .replace(/\$\{?__(?:interval_ms|range_s|range_ms)\}?/g, '300')
    .replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*/g, '.*');
}

/** The metric names a PromQL expression selects (functions, keywords, labels, strings and durations skipped). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/#.*$/gm, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(\d*\.?\d+(?:[eE][+-]?\d+)?[A-Za-z]*)|([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const name = match[2];
    if (name === undefined || match[3] !== undefined || NOT_METRICS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/**
 * The values of `key:` anywhere in a YAML file written the way ours are (plain, quoted or block scalars). Only
 * for cross-checks: promtool parses the files for real.
 */
export function yamlValues(text: string, key: string): string[] {
  const lines = text.split('\n');
  const values: string[] = [];
  const pattern = new RegExp(`^(\\s*)(- )?${key}:(?:\\s+(.*))?$`);
  for (let i = 0; i < lines.length; i++) {
    const match = pattern.exec(lines[i] as string);
    if (!match) continue;
    const indent = (match[1] as string).length + (match[2] ? 2 : 0);
    const raw = (match[3] ?? '').trim();
    if (/^[|>][-+]?$/.test(raw)) {
      const block: string[] = [];
      while (i + 1 < lines.length) {
        const next = lines[i + 1] as string;
        if (next.trim() !== '' && next.length - next.trimStart().length <= indent) break;
        block.push(next.trim());
        i++;
      }
      values.push(block.join(raw.startsWith('>') ? ' ' : '\n').trim());
    } else if (raw.startsWith("'")) {
      values.push(raw.slice(1, raw.lastIndexOf("'")).replaceAll("''", "'"));
    } else if (raw.startsWith('"')) {
      values.push(JSON.parse(raw.slice(0, raw.lastIndexOf('"') + 1)) as string);
    } else {
      values.push(raw.replace(/\s+#.*$/, ''));
    }
  }
  return values;
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboards

interface DashboardExpression {
  readonly where: string;
  readonly expr: string;
}

/** Every PromQL expression of a Grafana dashboard: panel targets (rows and nested panels too) and variables. */
export function dashboardExpressions(dashboard: unknown, file: string): DashboardExpression[] {
  const found: DashboardExpression[] = [];
  const visitPanels = (panels: unknown) => {
    if (!Array.isArray(panels)) return;
    for (const panel of panels as Array<Record<string, unknown>>) {
      for (const [index, target] of ((panel.targets ?? []) as Array<Record<string, unknown>>).entries()) {
        if (typeof target.expr === 'string') {
          found.push({ where: `${file}: panel "${String(panel.title)}" target ${index}`, expr: target.expr });
        }
      }
      visitPanels(panel.panels);
    }
  };
  const board = dashboard as { panels?: unknown; templating?: { list?: Array<Record<string, unknown>> } };
  visitPanels(board.panels);
  for (const variable of board.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query = variable.query as string | { query?: string } | undefined;
    const text = typeof query === 'string' ? query : query?.query;
    if (typeof text !== 'string') continue;
    // label_values(metric{…}, label) is Grafana's, not PromQL: its first argument is.
    const labelValues = /^label_values\((.*),\s*\w+\)$/.exec(text.trim());
    found.push({ where: `${file}: variable $${String(variable.name)}`, expr: labelValues?.[1] ?? text });
  }
  return found;
}

/** Structural problems of a dashboard: what Grafana needs to import it and what the project relies on. */
export function dashboardProblems(dashboard: unknown, file: string): string[] {
  const problems: string[] = [];
  const board = dashboard as Record<string, unknown>;
  for (const key of ['title', 'uid']) {
    if (typeof board[key] !== 'string' || board[key] === '') problems.push(`${file}: no ${key}`);
  }
  if (typeof board.schemaVersion !== 'number') problems.push(`${file}: no schemaVersion`);
  if (!Array.isArray(board.panels) || board.panels.length === 0) problems.push(`${file}: no panels`);
  const ids = new Set<number>();
  const visit = (panels: unknown) => {
    if (!Array.isArray(panels)) return;
    for (const panel of panels as Array<Record<string, unknown>>) {
      const title = `${file}: panel "${String(panel.title)}"`;
      if (typeof panel.id !== 'number') problems.push(`${title} has no numeric id`);
      else if (ids.has(panel.id)) problems.push(`${title} reuses id ${panel.id}`);
      else ids.add(panel.id);
      if (typeof panel.gridPos !== 'object' || panel.gridPos === null) problems.push(`${title} has no gridPos`);
      if (panel.type !== 'row') {
        const targets = panel.targets;
        if (!Array.isArray(targets) || targets.length === 0) problems.push(`${title} has no targets`);
        else {
          for (const target of targets as Array<Record<string, unknown>>) {
            if (typeof target.expr !== 'string' || target.expr.trim() === '') problems.push(`${title}: empty expr`);
          }
        }
      }
      visit(panel.panels);
    }
  };
  visit(board.panels);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Documentation

/** Rows of the metric tables in docs/observability.md: `| \`name\` | type | …`. */
export function documentedMetrics(markdown: string): Map<string, { type: MetricType; exportedBy: string[] }> {
  const metrics = new Map<string, { type: MetricType; exportedBy: string[] }>();
  for (const match of markdown.matchAll(
    /^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|\s*([^|]*)\|/gm,
  )) {
    const exportedBy = (match[3] as string)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    metrics.set(match[1] as string, { type: match[2] as MetricType, exportedBy });
  }
  return metrics;
}

// ---------------------------------------------------------------------------------------------------------------
// promtool

const PROMTOOL = '/usr/bin/promtool';

function findPromtool(): string | undefined {
  const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  const path = which.stdout.trim();
  if (which.status === 0 && path !== '') return path;
  return existsSync(PROMTOOL) ? PROMTOOL : undefined;
}

/**
 * Installs Debian's `prometheus` package for its promtool, without letting it start the Prometheus server it
 * also ships: maintainer scripts start services through invoke-rc.d / deb-systemd-invoke, which ask
 * /usr/sbin/policy-rc.d first; unless that already denies (exit 101, as in containers), a denying one is put in
 * place for the install and the original restored afterwards. The unit is then disabled (and stopped), so that
 * it does not start at the next boot either.
 */
function installPromtool(): string {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'promtool is not installed; run: sudo apt-get install -y --no-install-recommends prometheus ' +
        '(then `sudo systemctl disable --now prometheus`: only promtool is needed)',
    );
  }
  log("installing promtool from Debian's prometheus package (its server stays stopped)…");
  const policy = '/usr/sbin/policy-rc.d';
  const denies = existsSync(policy) && spawnSync(policy, ['prometheus', 'start']).status === 101;
  const backup = `${policy}.observability-check`;
  if (!denies) {
    if (existsSync(policy)) renameSync(policy, backup);
    const script = '#!/bin/sh\n# Temporary, from scripts/observability-check.ts: start no service.\nexit 101\n';
    writeFileSync(policy, script, { mode: 0o755 });
  }
  try {
    const apt = (args: string[]) =>
      spawnSync('apt-get', args, {
        stdio: ['ignore', process.stderr, process.stderr],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      }).status;
    const install = ['install', '-y', '-qq', '--no-install-recommends', 'prometheus'];
    if (apt(install) !== 0 && (apt(['update', '-qq']) !== 0 || apt(install) !== 0)) {
      throw new Error('apt-get install prometheus failed (see above)');
    }
  } finally {
    if (!denies) {
      rmSync(policy, { force: true });
      if (existsSync(backup)) renameSync(backup, policy);
    }
  }
  // Not at the next boot either: `systemctl disable` works without a running systemd (and updates the SysV links).
  const booted = existsSync('/run/systemd/system');
  if (
    spawnSync('systemctl', ['disable', ...(booted ? ['--now'] : []), 'prometheus.service'], { stdio: 'ignore' }).error
  ) {
    spawnSync('update-rc.d', ['prometheus', 'disable'], { stdio: 'ignore' });
  }
  const path = findPromtool();
  if (path === undefined) throw new Error('installing prometheus did not provide promtool');
  return path;
}

interface Run {
  readonly status: number | null;
  readonly output: string;
}

function runAsync(command: string, args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('error', (error) => resolveRun({ status: null, output: String(error) }));
    child.once('close', (status) => resolveRun({ status, output }));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The check

const yamlFiles = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => /\.ya?ml$/.test(name))
        .sort()
        .map((name) => join(dir, name))
    : [];

/** The PrometheusRule manifest for a rule file: its `groups:` onwards, under `spec:`. */
export function prometheusRuleFor(rulesText: string, source: string): string {
  const lines = rulesText.split('\n');
  const start = lines.findIndex((line) => line.startsWith('groups:'));
  const body = lines
    .slice(start)
    .map((line) => (line === '' ? '' : `  ${line}`))
    .join('\n')
    .trimEnd();
  return [
    `# GENERATED from ${source} by \`npm run observability:check -- --write\`: edit that file, not this one.`,
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

/**
 * The items of `alert_rule_test:` lists in a promtool test file written the way ours are (each item opens with
 * `- eval_time:` or `- alertname:`): which alert each checks, and whether it expects it firing (`exp_alerts`
 * non-empty) or silent (`exp_alerts: []`, or none).
 */
export function alertRuleTests(text: string): Array<{ alertname: string; firing: boolean }> {
  const lines = text.split('\n');
  const items: Array<{ alertname: string; firing: boolean }> = [];
  for (let i = 0; i < lines.length; i++) {
    const start = /^(\s*)- (?:eval_time|alertname):/.exec(lines[i] as string);
    if (!start) continue;
    const indent = (start[1] as string).length;
    const item = [(lines[i] as string).replace('- ', '  ')];
    while (i + 1 < lines.length) {
      const next = lines[i + 1] as string;
      if (next.trim() !== '' && next.length - next.trimStart().length <= indent) break;
      item.push(next);
      i++;
    }
    const body = item.join('\n');
    const alertname = /^\s*alertname:\s*(\S+)/m.exec(body)?.[1];
    if (alertname === undefined) continue;
    const expected = /^\s*exp_alerts:(.*)$/m.exec(body);
    items.push({ alertname, firing: expected !== null && expected[1]?.trim() !== '[]' });
  }
  return items;
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

/** `autoscaling.knative.dev/max-scale` of each Knative Service in knative/base, with the namespace it deploys to. */
function knativeMaxScales(): { namespace: string; services: Map<string, number> } | undefined {
  if (!existsSync(KNATIVE_BASE)) return undefined;
  const kustomization = join(KNATIVE_BASE, 'kustomization.yaml');
  const namespace = existsSync(kustomization)
    ? (yamlValues(readFileSync(kustomization, 'utf8'), 'namespace')[0] ?? 'default')
    : 'default';
  const services = new Map<string, number>();
  for (const file of yamlFiles(KNATIVE_BASE)) {
    const text = readFileSync(file, 'utf8');
    if (!/^kind: Service$/m.test(text) || !text.includes('serving.knative.dev/')) continue;
    const name = /^metadata:\n(?:\s+.*\n)*?\s{2}name: (\S+)/m.exec(text)?.[1];
    const maxScale = /autoscaling\.knative\.dev\/max-scale:\s*"?(\d+)"?/.exec(text)?.[1];
    if (name !== undefined && maxScale !== undefined) services.set(name, Number(maxScale));
  }
  return { namespace, services };
}

export async function check(options: { write?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const started = performance.now();
  const rel = (path: string) => relative(ROOT, path);

  const ruleFiles = yamlFiles(RULES_DIR);
  const testFiles = yamlFiles(TESTS_DIR);
  if (ruleFiles.length === 0) problems.push(`no rule files in ${rel(RULES_DIR)}`);
  if (testFiles.length === 0) problems.push(`no promtool unit tests in ${rel(TESTS_DIR)}`);

  // What may be referenced.
  const exported = await exportedMetricTypes();
  const allowed = new Set<string>(Object.keys(ALLOWED_EXTERNAL_METRICS));
  for (const [family, type] of exported) for (const name of sampleNames(family, type)) allowed.add(name);
  const rulesText = ruleFiles.map((file) => readFileSync(file, 'utf8'));
  for (const text of rulesText) for (const record of yamlValues(text, 'record')) allowed.add(record);
  const unknownNames = (expr: string) =>
    metricNamesIn(substituteGrafanaVariables(expr)).filter((name) => !allowed.has(name));

  // Rules: metric names, alerts and their tests.
  const alerts = new Set<string>();
  for (const [index, text] of rulesText.entries()) {
    const file = rel(ruleFiles[index] as string);
    for (const expr of yamlValues(text, 'expr')) {
      for (const name of unknownNames(expr)) problems.push(`${file}: ${name} is not a metric the service exports`);
    }
    for (const alert of yamlValues(text, 'alert')) alerts.add(alert);
  }
  const fired = new Set<string>();
  const silent = new Set<string>();
  for (const file of testFiles) {
    for (const { alertname, firing } of alertRuleTests(readFileSync(file, 'utf8'))) {
      (firing ? fired : silent).add(alertname);
    }
  }
  for (const alert of alerts) {
    if (!fired.has(alert)) problems.push(`alert ${alert} has no unit test that fires it`);
    if (!silent.has(alert)) problems.push(`alert ${alert} has no unit test that shows it silent`);
  }
  for (const alert of new Set([...fired, ...silent])) {
    if (!alerts.has(alert)) problems.push(`a unit test names alert ${alert}, which no rule defines`);
  }

  // Dashboards: parse, structure, metric names; their expressions become recording rules for promtool.
  const dashboardRules: string[] = [];
  const dashboards = existsSync(DASHBOARDS_DIR) ? readdirSync(DASHBOARDS_DIR).filter((n) => n.endsWith('.json')) : [];
  if (dashboards.length === 0) problems.push(`no dashboards in ${rel(DASHBOARDS_DIR)}`);
  for (const name of dashboards) {
    const file = rel(join(DASHBOARDS_DIR, name));
    let dashboard: unknown;
    try {
      dashboard = JSON.parse(readFileSync(join(DASHBOARDS_DIR, name), 'utf8'));
    } catch (error) {
      problems.push(`${file}: not JSON: ${(error as Error).message}`);
      continue;
    }
    problems.push(...dashboardProblems(dashboard, file));
    for (const { where, expr } of dashboardExpressions(dashboard, file)) {
      for (const unknown of unknownNames(expr))
        problems.push(`${where}: ${unknown} is not a metric the service exports`);
      dashboardRules.push(
        `      - record: dashboard:expr_${dashboardRules.length}\n        expr: ${JSON.stringify(substituteGrafanaVariables(expr))}`,
      );
    }
  }

  // Documentation: every exported data_service_* family with its type, and every alert.
  if (!existsSync(DOCS)) problems.push(`${rel(DOCS)} does not exist`);
  else {
    const docs = readFileSync(DOCS, 'utf8');
    const documented = documentedMetrics(docs);
    for (const [family, type] of exported) {
      if (!family.startsWith('data_service_')) continue;
      const entry = documented.get(family);
      if (entry === undefined) problems.push(`${rel(DOCS)} does not document ${family} (${type})`);
      else if (entry.type !== type) problems.push(`${rel(DOCS)} says ${family} is a ${entry.type}; it is a ${type}`);
    }
    for (const [family, { type }] of documented) {
      const actual = exported.get(family);
      if (actual === undefined) problems.push(`${rel(DOCS)} documents ${family}, which the service does not export`);
      else if (!family.startsWith('data_service_') && actual !== type) {
        problems.push(`${rel(DOCS)} says ${family} is a ${type}; it is a ${actual}`);
      }
    }
    for (const alert of alerts) {
      if (!new RegExp(`^#{2,4} .*\\b${alert}\\b`, 'm').test(docs)) {
        problems.push(`${rel(DOCS)} has no section for alert ${alert}`);
      }
    }
  }

  // The PrometheusRule is generated from the rule file.
  const mainRules = join(RULES_DIR, 'data-service.rules.yaml');
  if (existsSync(mainRules)) {
    const expected = prometheusRuleFor(readFileSync(mainRules, 'utf8'), rel(mainRules));
    if (options.write) writeFileSync(PROMETHEUS_RULE, expected);
    else if (!existsSync(PROMETHEUS_RULE) || readFileSync(PROMETHEUS_RULE, 'utf8') !== expected) {
      problems.push(`${rel(PROMETHEUS_RULE)} is out of date: run npm run observability:check -- --write`);
    }
  }

  // promtool, all invocations at once.
  const promtool = findPromtool() ?? installPromtool();
  const scratch = mkdtempSync(join(tmpdir(), 'observability-check-'));
  try {
    const runs: Array<Promise<{ what: string; run: Run }>> = [];
    const promtoolRun = (what: string, args: string[]) =>
      runs.push(runAsync(promtool, args).then((run) => ({ what, run })));
    promtoolRun('promtool check rules', ['check', 'rules', ...ruleFiles]);
    // One process per test file: they run in parallel.
    for (const file of testFiles) promtoolRun(`promtool test rules ${rel(file)}`, ['test', 'rules', file]);
    if (existsSync(SCRAPE_CONFIG)) {
      // Debian builds Prometheus without Kubernetes service discovery: its promtool rejects kubernetes_sd_configs,
      // so those blocks are swapped for a static target and the rest of the file is checked as written.
      const file = join(scratch, 'prometheus.yml');
      writeFileSync(file, withStaticTargets(readFileSync(SCRAPE_CONFIG, 'utf8')));
      promtoolRun(`promtool check config (${rel(SCRAPE_CONFIG)})`, ['check', 'config', '--syntax-only', file]);
    } else problems.push(`${rel(SCRAPE_CONFIG)} does not exist`);
    if (dashboardRules.length > 0) {
      const file = join(scratch, 'dashboard-expressions.yaml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${dashboardRules.join('\n')}\n`);
      promtoolRun('promtool check rules (dashboard expressions)', ['check', 'rules', file]);
    }
    const knative = knativeMaxScales();
    if (knative === undefined) log('knative/base not found: max-scale recording rule not compared');
    else if (knative.services.size > 0) {
      // promtool evaluates the recording rule; JSON is YAML, so the test file is written as JSON.
      const file = join(scratch, 'max-scale.test.yaml');
      const samples = [...knative.services].map(([service, maxScale]) => ({
        labels: `${MAX_SCALE_RECORD}{namespace_name="${knative.namespace}",service_name="${service}"}`,
        value: maxScale,
      }));
      writeFileSync(
        file,
        JSON.stringify({
          rule_files: ruleFiles,
          evaluation_interval: '30s',
          tests: [
            {
              interval: '30s',
              promql_expr_test: [{ expr: MAX_SCALE_RECORD, eval_time: '1m', exp_samples: samples }],
            },
          ],
        }),
      );
      promtoolRun(`promtool test rules (${MAX_SCALE_RECORD} = max-scale in knative/base)`, ['test', 'rules', file]);
    }
    for (const { what, run } of await Promise.all(runs)) {
      if (run.status === 0) log(`${what}: ok`);
      else problems.push(`${what} failed:\n${run.output.trim()}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const names = [...exported.keys()].filter((n) => n.startsWith('data_service_')).length;
  log(
    `${ruleFiles.length} rule file(s), ${alerts.size} alerts, ${testFiles.length} test file(s), ` +
      `${dashboards.length} dashboard(s) (${dashboardRules.length} expressions), ${names} data_service_* metrics; ` +
      `${Math.round(performance.now() - started)} ms`,
  );
  return problems;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const problems = await check({ write: process.argv.includes('--write') });
  for (const problem of problems) process.stderr.write(`✗ ${problem}\n`);
  if (problems.length > 0) {
    log(`${problems.length} problem(s)`);
    process.exit(1);
  }
  log('all good');
}
