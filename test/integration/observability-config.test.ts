/**
 * observability/ held to the code, offline (`npm run observability:check` runs this file alone):
 *
 * - promtool (Debian's `prometheus` package, installed with apt-get when missing and we are root, its server kept
 *   stopped): `check rules` on every rule file, `test rules` on every unit-test file, `check config --syntax-only`
 *   on the scrape config, and every dashboard expression fed to `check rules` as a recording rule, so that the
 *   real PromQL parser judges it;
 * - every alert has a unit test that fires it and one that shows it silent;
 * - every metric in a rule or dashboard is one the service exports, one a rule of ours records, or an allowed
 *   Knative metric;
 * - the max-scale recording rule equals `autoscaling.knative.dev/max-scale` in knative/base (promtool evaluates it);
 * - observability/kubernetes/prometheus-rule.yaml is the rule file wrapped in a PrometheusRule
 *   (`OBSERVABILITY_WRITE=1 npm run observability:check` regenerates it);
 * - docs/observability.md documents every exported `data_service_*` metric with its type, and every alert.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { aptInstall, hasCommand, run } from '../../scripts/processes.ts';
import {
  type Dashboard,
  dashboardExpressions,
  dashboardProblems,
  documentedMetrics,
  exportedMetricTypes,
  type MetricType,
  metricNamesIn,
  prometheusRuleFor,
  sampleNames,
  substituteGrafanaVariables,
  withStaticTargets,
} from '../support/observability-files.ts';
import { ROOT } from '../support/processes.ts';

const DIR = join(ROOT, 'observability');
const RULES_DIR = join(DIR, 'prometheus', 'rules');
const TESTS_DIR = join(DIR, 'prometheus', 'tests');
const MAIN_RULES = join(RULES_DIR, 'data-service.rules.yaml');
const PROMETHEUS_RULE = join(DIR, 'kubernetes', 'prometheus-rule.yaml');
const DOCS = join(ROOT, 'docs', 'observability.md');
const MAX_SCALE_RECORD = 'data_service:knative_max_scale';
/**
 * Metrics the dashboard and rules may use that the service does not export: the Knative autoscaler's (Knative
 * Serving 1.15, scraped from knative-serving/autoscaler:http-metrics). Add one only with the reason it exists.
 */
const ALLOWED_EXTERNAL_METRICS: Readonly<Record<string, string>> = {
  autoscaler_desired_pods: 'Knative autoscaler: pods it wants for a revision (clamped to max-scale)',
  autoscaler_actual_pods: 'Knative autoscaler: pods of a revision that are ready',
};

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
}
interface KnativeService {
  readonly kind: string;
  readonly apiVersion: string;
  readonly metadata: { readonly name: string };
  readonly spec: { readonly template: { readonly metadata: { readonly annotations: Record<string, string> } } };
}
interface AlertTest {
  readonly alertname?: string;
  readonly exp_alerts?: readonly unknown[];
}

const rel = (path: string) => relative(ROOT, path);
const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(dir, name));
const ruleFiles = yamlFiles(RULES_DIR);
const testFiles = yamlFiles(TESTS_DIR);
const rules: Rule[] = ruleFiles.flatMap((file) =>
  (parse(readFileSync(file, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules),
);
const alerts = new Set(rules.flatMap((r) => (r.alert === undefined ? [] : [r.alert])));
const dashboards = readdirSync(join(DIR, 'grafana'))
  .filter((name) => name.endsWith('.json'))
  .map((name) => ({
    file: `observability/grafana/${name}`,
    board: JSON.parse(readFileSync(join(DIR, 'grafana', name), 'utf8')) as Dashboard,
  }));

/**
 * promtool from Debian's `prometheus` package, installed without letting it start the Prometheus server it also
 * ships: maintainer scripts ask /usr/sbin/policy-rc.d before starting a service, so unless that already denies
 * (exit 101, as in containers) a denying one is put in place for the install and the original restored after;
 * the unit is then disabled, so that it does not start at the next boot either.
 */
function promtool(): string {
  if (hasCommand('promtool')) return 'promtool';
  const policy = '/usr/sbin/policy-rc.d';
  const backup = `${policy}.observability-check`;
  const denies = existsSync(policy) && spawnSync(policy, ['prometheus', 'start']).status === 101;
  if (!denies) {
    if (existsSync(policy)) renameSync(policy, backup);
    writeFileSync(policy, '#!/bin/sh\n# Temporary, from test/integration/observability-config.test.ts.\nexit 101\n', {
      mode: 0o755,
    });
  }
  try {
    aptInstall(['prometheus'], 'promtool (from the prometheus package; its server stays stopped)');
  } finally {
    if (!denies) {
      rmSync(policy, { force: true });
      if (existsSync(backup)) renameSync(backup, policy);
    }
  }
  // Not at the next boot either; `systemctl disable` works without a running systemd (and updates SysV links).
  const booted = existsSync('/run/systemd/system');
  if (
    spawnSync('systemctl', ['disable', ...(booted ? ['--now'] : []), 'prometheus.service'], { stdio: 'ignore' }).error
  ) {
    spawnSync('update-rc.d', ['prometheus', 'disable'], { stdio: 'ignore' });
  }
  return 'promtool';
}

let tool = 'promtool';
let scratch = '';
let exported = new Map<string, MetricType>();
const check = async (args: string[]) => {
  const result = await run(tool, args, { timeoutMs: 60_000 });
  return { ok: result.exitCode === 0, output: `${result.stdout}${result.stderr}`.trim() };
};

beforeAll(async () => {
  tool = promtool();
  scratch = mkdtempSync(join(tmpdir(), 'observability-check-'));
  exported = await exportedMetricTypes();
}, 300_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('observability files', () => {
  it('promtool check rules accepts every rule file', async () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    expect(await check(['check', 'rules', ...ruleFiles])).toMatchObject({ ok: true });
  });

  it.each(testFiles.map((file) => [rel(file), file]))('promtool test rules %s', async (_, file) => {
    expect(await check(['test', 'rules', file])).toMatchObject({ ok: true });
  });

  it('promtool check config accepts the scrape config (Kubernetes discovery swapped for a static target)', async () => {
    // Debian builds Prometheus without Kubernetes service discovery: its promtool rejects kubernetes_sd_configs.
    const file = join(scratch, 'prometheus.yml');
    writeFileSync(file, withStaticTargets(readFileSync(join(DIR, 'prometheus', 'prometheus.yml'), 'utf8')));
    expect(await check(['check', 'config', '--syntax-only', file])).toMatchObject({ ok: true });
  });

  it('every dashboard imports into Grafana and every expression parses as PromQL', async () => {
    expect(dashboards.length).toBeGreaterThan(0);
    const expressions = dashboards.flatMap(({ file, board }) => {
      expect({ file, problems: dashboardProblems(board) }).toEqual({ file, problems: [] });
      return dashboardExpressions(board);
    });
    const file = join(scratch, 'dashboard-expressions.yaml');
    const records = expressions.map(({ expr }, i) => ({
      record: `dashboard:expr_${i}`,
      expr: substituteGrafanaVariables(expr),
    }));
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: records }] }));
    expect(await check(['check', 'rules', file])).toMatchObject({ ok: true });
  });

  it('every metric in a rule or dashboard is exported, recorded by a rule, or an allowed Knative metric', () => {
    const allowed = new Set(Object.keys(ALLOWED_EXTERNAL_METRICS));
    for (const [family, type] of exported) for (const name of sampleNames(family, type)) allowed.add(name);
    for (const rule of rules) if (rule.record !== undefined) allowed.add(rule.record);
    const expressions = [
      ...rules.map((r) => ({ where: r.alert ?? r.record, expr: r.expr })),
      ...dashboards.flatMap(({ file, board }) =>
        dashboardExpressions(board).map((e) => ({ ...e, where: `${file}: ${e.where}` })),
      ),
    ];
    const unknown = expressions.flatMap(({ where, expr }) =>
      metricNamesIn(substituteGrafanaVariables(expr))
        .filter((name) => !allowed.has(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('every alert has a unit test that fires it and one that shows it silent', () => {
    const cases = testFiles.flatMap((file) =>
      (parse(readFileSync(file, 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> }).tests.flatMap(
        (t) => t.alert_rule_test ?? [],
      ),
    );
    const tested = (firing: boolean) =>
      new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0 === firing).map((c) => c.alertname));
    const [fired, silent] = [tested(true), tested(false)];
    expect([...alerts].filter((a) => !fired.has(a))).toEqual([]);
    expect([...alerts].filter((a) => !silent.has(a))).toEqual([]);
    expect([...fired, ...silent].filter((a) => !alerts.has(a ?? ''))).toEqual([]);
  });

  it('the max-scale recording rule equals autoscaling.knative.dev/max-scale in knative/base', async () => {
    const base = join(ROOT, 'knative', 'base');
    const namespace = (parse(readFileSync(join(base, 'kustomization.yaml'), 'utf8')) as { namespace: string })
      .namespace;
    const services = yamlFiles(base)
      .map((file) => parse(readFileSync(file, 'utf8')) as Partial<KnativeService> | null)
      .filter(
        (doc): doc is KnativeService => doc?.kind === 'Service' && !!doc.apiVersion?.startsWith('serving.knative.dev/'),
      )
      .map((doc) => ({
        name: doc.metadata.name,
        maxScale: Number(doc.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale']),
      }));
    expect(services.length).toBeGreaterThan(0);
    const file = join(scratch, 'max-scale.test.yaml');
    const exp_samples = services.map(({ name, maxScale }) => ({
      labels: `${MAX_SCALE_RECORD}{namespace_name="${namespace}",service_name="${name}"}`,
      value: maxScale,
    }));
    const test = { interval: '30s', promql_expr_test: [{ expr: MAX_SCALE_RECORD, eval_time: '1m', exp_samples }] };
    writeFileSync(file, JSON.stringify({ rule_files: ruleFiles, evaluation_interval: '30s', tests: [test] }));
    expect(await check(['test', 'rules', file])).toMatchObject({ ok: true });
  });

  it('observability/kubernetes/prometheus-rule.yaml is the rule file as a PrometheusRule', () => {
    const expected = prometheusRuleFor(readFileSync(MAIN_RULES, 'utf8'), rel(MAIN_RULES));
    if (process.env.OBSERVABILITY_WRITE === '1') writeFileSync(PROMETHEUS_RULE, expected);
    // Out of date: OBSERVABILITY_WRITE=1 npm run observability:check
    expect(readFileSync(PROMETHEUS_RULE, 'utf8')).toBe(expected);
  });

  it('docs/observability.md documents every exported data_service_* metric with its type, and every alert', () => {
    const docs = readFileSync(DOCS, 'utf8');
    const documented = documentedMetrics(docs);
    const ours = [...exported].filter(([family]) => family.startsWith('data_service_'));
    expect(ours.map(([family]) => [family, documented.get(family)?.type])).toEqual(ours);
    for (const [family, { type }] of documented) {
      const actual = exported.get(family);
      expect({
        family,
        exported: actual !== undefined,
        type: family.startsWith('data_service_') ? type : actual,
      }).toEqual({ family, exported: true, type });
    }
    expect([...alerts].filter((alert) => !new RegExp(`^#{2,4} .*\\b${alert}\\b`, 'm').test(docs))).toEqual([]);
  });
});
