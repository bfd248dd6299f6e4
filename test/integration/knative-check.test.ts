/**
 * `npm run knative:check`: every overlay passes, and each mistake an operator could make in an overlay is rejected
 * with a message naming the field. Each case is the production (or hpa) overlay plus one patch, in a kustomization
 * the checker renders itself — what `npm run knative:check -- PATH` does. The GitHub workflows pass actionlint.
 * The first run builds tools/knative-check (Go; minutes on a cold module cache, seconds afterwards).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ROOT } from '../support/processes.ts';

const CASES_DIR = join(ROOT, '.cache', 'knative-check-cases', Math.random().toString(36).slice(2, 8));
const BUILD_TIMEOUT_MS = 15 * 60_000;

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const knativeCheck = (...args: string[]) => run(process.execPath, ['scripts/knative-check.ts', ...args]);

interface Case {
  readonly name: string;
  /** The overlay the mistake is made in. */
  readonly overlay?: 'production' | 'hpa';
  /** kustomization.yaml lines after `resources:` (patches, generators), or extra resource files. */
  readonly kustomization: string;
  readonly files?: Record<string, string>;
  /** Every finding line expected, as `<object>: <field>: <message fragment> … [<rule>]`. */
  readonly findings: ReadonlyArray<{ object: string; field: string; message: string; rule: string }>;
}

const annotation = (key: string) => `spec.template.metadata.annotations.autoscaling.knative.dev/${key}`;
/** Deletes one rendered resource (a strategic-merge `$patch: delete`, which kustomize applies to any kind). */
const deleteResource = (...resources: ReadonlyArray<{ apiVersion: string; kind: string; name: string }>) =>
  `patches:\n${resources
    .map(
      (r) =>
        `  - patch: |-\n      $patch: delete\n      apiVersion: ${r.apiVersion}\n      kind: ${r.kind}\n      metadata: { name: ${r.name}, namespace: data-service }\n`,
    )
    .join('')}`;
/** A JSON 6902 patch of one resource of another kind than a Knative Service. */
const jsonPatchOf = (kind: string, name: string, ops: ReadonlyArray<{ op: string; path: string; value?: unknown }>) =>
  `patches:\n  - target: { kind: ${kind}, name: ${name} }\n    patch: '${JSON.stringify(ops)}'\n`;
const bothServices = (field: string, message: string, rule: string) =>
  ['ingest', 'query'].map((service) => ({ object: `Service/${service}`, field, message, rule }));
/** A JSON 6902 patch of one Service, written as JSON (which YAML accepts). */
const jsonPatch = (service: string, ops: ReadonlyArray<{ op: string; path: string; value?: unknown }>) =>
  `patches:\n  - target: { group: serving.knative.dev, kind: Service, name: ${service} }\n    patch: '${JSON.stringify(ops)}'\n`;

const CASES: Case[] = [
  {
    name: 'a misspelt annotation',
    kustomization: jsonPatch('ingest', [
      { op: 'add', path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1max-sacle', value: '50' },
    ]),
    findings: [
      {
        object: 'Service/ingest',
        field: annotation('max-sacle'),
        message:
          'unknown annotation key: Knative ignores it, so the setting is not in effect; did you mean "autoscaling.knative.dev/max-scale"?',
        rule: 'known-annotations',
      },
    ],
  },
  {
    name: 'max-scale below min-scale',
    kustomization: jsonPatch('ingest', [
      { op: 'replace', path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1max-scale', value: '2' },
    ]),
    findings: [
      {
        object: 'Service/ingest',
        field: `${annotation('max-scale')}, ${annotation('min-scale')}`,
        message: 'max-scale=2 is less than min-scale=3',
        rule: 'knative',
      },
    ],
  },
  {
    name: 'a window out of range',
    kustomization: jsonPatch('query', [
      { op: 'replace', path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1window', value: '3s' },
    ]),
    findings: [
      { object: 'Service/query', field: annotation('window'), message: 'expected 6s <= 3s <= 1h0m0s', rule: 'knative' },
    ],
  },
  {
    name: 'a missing probe',
    kustomization: jsonPatch('query', [{ op: 'remove', path: '/spec/template/spec/containers/0/readinessProbe' }]),
    findings: [
      {
        object: 'Service/query',
        field: 'spec.template.spec.containers[0].readinessProbe',
        message: 'missing: must be an httpGet on /readyz',
        rule: 'probes',
      },
    ],
  },
  {
    name: 'timeoutSeconds below the drain',
    kustomization: jsonPatch('ingest', [{ op: 'replace', path: '/spec/template/spec/timeoutSeconds', value: 40 }]),
    findings: [
      {
        object: 'Service/ingest',
        field: 'spec.template.spec.timeoutSeconds',
        message: '40 s is below the shutdown budget of 55 s (queue-proxy drain 30 s + DRAIN_TIMEOUT_MS 20000 ms',
        rule: 'drain',
      },
    ],
  },
  {
    name: 'a longer drain in the ConfigMap that timeoutSeconds no longer covers',
    kustomization: `configMapGenerator:
  - name: data-service-config
    behavior: merge
    literals:
      - DRAIN_TIMEOUT_MS=45000
`,
    findings: ['ingest', 'query'].map((service) => ({
      object: `Service/${service}`,
      field: 'spec.template.spec.timeoutSeconds',
      message:
        '60 s is below the shutdown budget of 80 s (queue-proxy drain 30 s + DRAIN_TIMEOUT_MS 45000 ms from ConfigMap data-service-config-',
      rule: 'drain',
    })),
  },
  {
    name: 'limits below requests',
    kustomization: jsonPatch('ingest', [
      { op: 'replace', path: '/spec/template/spec/containers/0/resources/limits/memory', value: '128Mi' },
    ]),
    findings: [
      {
        object: 'Service/ingest',
        field: 'spec.template.spec.containers[0].resources.limits.memory',
        message: '128Mi is below resources.requests.memory 256Mi: limits must be at least the requests',
        rule: 'resources',
      },
    ],
  },
  {
    name: 'a soft target above containerConcurrency',
    kustomization: jsonPatch('ingest', [
      { op: 'replace', path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1target', value: '40' },
    ]),
    findings: [
      {
        object: 'Service/ingest',
        field: annotation('target'),
        message: 'soft target 40 is above spec.template.spec.containerConcurrency 25: Knative caps it at 25',
        rule: 'concurrency-target',
      },
    ],
  },
  {
    name: 'production min-scale below three zones',
    kustomization: jsonPatch('query', [
      { op: 'replace', path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1min-scale', value: '1' },
      { op: 'replace', path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1initial-scale', value: '1' },
    ]),
    findings: [
      {
        object: 'Service/query',
        field: annotation('min-scale'),
        message: 'is 1; production needs at least 3 so that each of the three zones keeps a warm pod',
        rule: 'production-min-scale',
      },
    ],
  },
  {
    name: 'a misspelt field (strict decoding)',
    kustomization: jsonPatch('query', [
      { op: 'add', path: '/spec/template/spec/containers/0/readinesProbe', value: { httpGet: { path: '/readyz' } } },
    ]),
    findings: [
      {
        object: 'Service/query',
        field: 'spec.template.spec.containers[0].readinesProbe',
        message: 'unknown field "spec.template.spec.containers[0].readinesProbe"',
        rule: 'decode',
      },
    ],
  },
  {
    name: 'a credential written into the manifest',
    kustomization: jsonPatch('ingest', [
      {
        op: 'add',
        path: '/spec/template/spec/containers/0/env',
        value: [{ name: 'DATABASE_URL', value: 'postgres://app:secret@db:5432/data' }],
      },
    ]),
    findings: [
      {
        object: 'Service/ingest',
        field: 'spec.template.spec.containers[0].env[DATABASE_URL]',
        message: 'is a literal: credentials come from a Secret',
        rule: 'secret-env',
      },
    ],
  },
  {
    name: 'a keep-alive timeout below queue-proxy’s idle timeout',
    kustomization: `configMapGenerator:
  - name: data-service-config
    behavior: merge
    literals:
      - KEEP_ALIVE_TIMEOUT_MS=60000
`,
    findings: ['ingest', 'query'].map((service) => ({
      object: `Service/${service}`,
      field: 'spec.template.spec.containers[0].env[KEEP_ALIVE_TIMEOUT_MS]',
      message: '"60000" (ConfigMap data-service-config-',
      rule: 'keep-alive',
    })),
  },
  {
    name: 'a KPA-only annotation under the HPA class',
    overlay: 'hpa',
    kustomization: jsonPatch('query', [
      {
        op: 'add',
        path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1panic-window-percentage',
        value: '10',
      },
    ]),
    findings: [
      {
        object: 'Service/query',
        field: annotation('panic-window-percentage'),
        message: 'only the KPA autoscaler reads it; with class hpa.autoscaling.knative.dev it has no effect',
        rule: 'known-annotations',
      },
    ],
  },
  {
    name: 'a misspelt feature-flag value in config-features',
    kustomization: 'resources:\n  - config-features.yaml\n',
    files: {
      'config-features.yaml': `apiVersion: v1
kind: ConfigMap
metadata: { name: config-features, namespace: knative-serving }
data:
  kubernetes.podspec-topologyspreadconstraints: enabeld
`,
    },
    findings: [
      {
        object: 'ConfigMap/config-features',
        field: 'data.kubernetes.podspec-topologyspreadconstraints',
        message: '"enabeld" is not enabled, disabled or allowed: Knative would silently keep the default',
        rule: 'known-keys',
      },
      // …and with the flag off, Knative's own validation refuses the zone spread of both services.
      ...['ingest', 'query'].map((service) => ({
        object: `Service/${service}`,
        field: 'spec.template.spec.topologySpreadConstraints',
        message: 'must not set the field(s)',
        rule: 'knative',
      })),
    ],
  },
  // Production security (invariant 7, docs/security.md): each mistake below is one an overlay could make.
  {
    name: 'a production overlay without the RequestAuthentication',
    kustomization: deleteResource({
      apiVersion: 'security.istio.io/v1',
      kind: 'RequestAuthentication',
      name: 'data-api-jwt',
    }),
    findings: bothServices(
      '(object)',
      'no RequestAuthentication with a JWT rule selects its pods: the mesh would not check the bearer tokens',
      'mesh-auth',
    ),
  },
  {
    name: 'a RequestAuthentication that strips the token the app verifies again',
    kustomization: jsonPatchOf('RequestAuthentication', 'data-api-jwt', [
      { op: 'replace', path: '/spec/jwtRules/0/forwardOriginalToken', value: false },
    ]),
    findings: [
      {
        object: 'RequestAuthentication/data-api-jwt',
        field: 'spec.jwtRules[0].forwardOriginalToken',
        message: 'must be true: Istio strips a validated token otherwise',
        rule: 'mesh-auth',
      },
      ...bothServices('(object)', 'no RequestAuthentication with a JWT rule selects its pods', 'mesh-auth'),
    ],
  },
  {
    name: 'a function without an AuthorizationPolicy',
    kustomization: deleteResource({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', name: 'query' }),
    findings: [
      {
        object: 'Service/query',
        field: '(object)',
        message: 'no ALLOW AuthorizationPolicy selects its pods: any caller that reaches them would be let through',
        rule: 'mesh-auth',
      },
    ],
  },
  {
    name: 'an AuthorizationPolicy that lets /data through without a validated token',
    kustomization: jsonPatchOf('AuthorizationPolicy', 'ingest', [{ op: 'remove', path: '/spec/rules/0/from' }]),
    findings: [
      {
        object: 'AuthorizationPolicy/ingest',
        field: 'spec.rules[0]',
        message: 'lets /data through without a validated token: give it from.source.requestPrincipals',
        rule: 'mesh-auth',
      },
    ],
  },
  {
    name: 'a production overlay without NetworkPolicies',
    kustomization: deleteResource(
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: 'default-deny-ingress' },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: 'functions-ingress' },
    ),
    findings: bothServices(
      '(object)',
      'no NetworkPolicy of type Ingress selects its pods: every pod of the cluster could connect to it',
      'network-policy',
    ),
  },
  {
    name: 'a NetworkPolicy rule that admits every source',
    kustomization: jsonPatchOf('NetworkPolicy', 'functions-ingress', [
      { op: 'add', path: '/spec/ingress/-', value: { ports: [{ port: 8012 }] } },
    ]),
    findings: [
      {
        object: 'NetworkPolicy/functions-ingress',
        field: 'spec.ingress[3].from',
        message: 'is empty, which allows every source',
        rule: 'network-policy',
      },
    ],
  },
  {
    name: "query connecting with ingest's database Secret",
    kustomization: jsonPatch('query', [
      { op: 'replace', path: '/spec/template/spec/containers/0/envFrom/1/secretRef/name', value: 'ingest-secrets' },
    ]),
    findings: [
      {
        object: 'Service/ingest',
        field: '(object)',
        message:
          'shares Secret "ingest-secrets", which may provide DATABASE_URL, with Service/query: each function connects as its own database user',
        rule: 'db-secret',
      },
      {
        object: 'Service/query',
        field: '(object)',
        message: 'shares Secret "ingest-secrets", which may provide DATABASE_URL, with Service/ingest',
        rule: 'db-secret',
      },
    ],
  },
  {
    name: 'the archiving maintenance job without its IAM role',
    kustomization: jsonPatchOf('CronJob', 'partition-maintenance', [
      { op: 'replace', path: '/spec/jobTemplate/spec/template/spec/serviceAccountName', value: 'data-service' },
    ]),
    findings: [
      {
        object: 'CronJob/partition-maintenance',
        field: 'spec.template.spec.containers[0]',
        message: 'archives to S3 bucket "data-service-archive-123456789012-eu-west-1" (ConfigMap data-service-config-',
        rule: 'aws-identity',
      },
    ],
  },
  {
    name: 'an IAM role on the functions',
    kustomization: `patches:
  - target: { kind: ServiceAccount, name: data-service }
    patch: '[{"op": "add", "path": "/metadata/annotations", "value": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}}]'
`,
    findings: bothServices(
      'spec.template.spec.serviceAccountName',
      'ServiceAccount "data-service" has the IAM role arn:aws:iam::123456789012:role/x: the functions call no AWS API',
      'aws-identity',
    ),
  },
  {
    name: 'Kafka over TLS without SASL',
    kustomization: `configMapGenerator:
  - name: data-service-kafka
    behavior: replace
    literals:
      - KAFKA_TOPIC=records
      - KAFKA_BROKERS=b-1.data-service.kafka.eu-west-1.amazonaws.com:9094
      - KAFKA_SSL=1
`,
    findings: [
      {
        object: 'Service/ingest',
        field: 'spec.template.spec.containers[0].env[KAFKA_SASL_MECHANISM]',
        message: 'missing while KAFKA_BROKERS is set (ConfigMap data-service-kafka-',
        rule: 'kafka-auth',
      },
    ],
  },
  {
    name: 'AUTH_MODE=none in production',
    kustomization: `configMapGenerator:
  - name: data-service-config
    behavior: merge
    literals:
      - AUTH_MODE=none
`,
    findings: bothServices(
      'spec.template.spec.containers[0].env[AUTH_MODE]',
      'is none (ConfigMap data-service-config-',
      'auth-mode',
    ),
  },
  {
    name: 'an app issuer other than the one Istio validates',
    kustomization: `configMapGenerator:
  - name: data-service-config
    behavior: merge
    literals:
      - AUTH_ISSUER=https://other.example.com/
`,
    findings: bothServices(
      'spec.template.spec.containers[0].env[AUTH_ISSUER]',
      '"https://other.example.com/" (ConfigMap data-service-config-',
      'auth-mode',
    ),
  },
  {
    name: '/metrics on a public route',
    kustomization: 'resources:\n  - metrics-route.yaml\n',
    files: {
      'metrics-route.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: scrape-me, namespace: data-service }
spec:
  hosts: [api.example.com]
  gateways: [knative-serving/knative-ingress-gateway]
  http:
    - name: everything
      match:
        - uri: { prefix: / }
      route:
        - destination: { host: knative-local-gateway.istio-system.svc.cluster.local }
`,
    },
    findings: [
      {
        object: 'VirtualService/scrape-me',
        field: 'spec.http[0]',
        message:
          'route "everything" reaches /metrics, /healthz, /readyz on a public gateway: probes and /metrics are served on the function\'s own port only',
        rule: 'public-routes',
      },
    ],
  },
];

/** Writes the case as a kustomization on top of its overlay; returns its folder (relative to the repository). */
function writeCase(index: number, testCase: Case): string {
  const dir = join(CASES_DIR, `case-${index}`);
  mkdirSync(dir, { recursive: true });
  // From the real folder: .cache may be a symlink (worktrees share one), and `..` in a kustomization climbs the
  // real path, which would otherwise land in another checkout's overlays.
  const overlay = relative(
    realpathSync(dir),
    realpathSync(join(ROOT, 'knative', 'overlays', testCase.overlay ?? 'production')),
  );
  let kustomization = `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${overlay}\n`;
  kustomization += testCase.kustomization.startsWith('resources:\n')
    ? testCase.kustomization.slice('resources:\n'.length)
    : testCase.kustomization;
  writeFileSync(join(dir, 'kustomization.yaml'), kustomization);
  for (const [name, text] of Object.entries(testCase.files ?? {})) writeFileSync(join(dir, name), text);
  return relative(ROOT, dir);
}

afterAll(() => {
  rmSync(CASES_DIR, { recursive: true, force: true });
});

describe('npm run knative:check', () => {
  let all: Run;

  beforeAll(async () => {
    // Builds the checker when missing or stale, then checks knative/cluster and every overlay.
    all = await knativeCheck();
  }, BUILD_TIMEOUT_MS);

  it('passes knative/cluster and every overlay', () => {
    // On failure the comparison shows the checker's output (and the build's, on stderr).
    expect({ status: all.status, output: all.stdout + all.stderr }).toEqual({ status: 0, output: expect.any(String) });
    for (const path of [
      'knative/cluster',
      'knative/overlays/hpa',
      'knative/overlays/local',
      'knative/overlays/production',
    ]) {
      expect(all.stdout).toContain(`ok ${path}:`);
    }
    expect(all.stdout).toMatch(
      /^ok knative\/overlays\/production: 12 resources, 2 Knative Services \(ingest, query\)$/m,
    );
  });

  it.each(CASES.map((testCase, index) => [testCase.name, index, testCase] as const))(
    'rejects %s, naming the field',
    async (_name, index, testCase) => {
      const path = writeCase(index, testCase);
      const result = await knativeCheck(path);
      const findingLines = result.stdout.split('\n').filter((line) => line.startsWith(`${path}: `));
      expect({ status: result.status, findings: findingLines.length }).toEqual({
        status: 1,
        findings: testCase.findings.length,
      });
      for (const expected of testCase.findings) {
        const prefix = `${path}: ${expected.object}: ${expected.field}: `;
        const line = findingLines.find((l) => l.startsWith(prefix) && l.endsWith(`[${expected.rule}]`));
        expect({ line, stdout: result.stdout }).toEqual({
          line: expect.stringContaining(expected.message),
          stdout: result.stdout,
        });
      }
    },
    60_000,
  );

  it('checks a single YAML file as well as a kustomize folder', async () => {
    const dir = join(CASES_DIR, 'file');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'service.yaml');
    writeFileSync(
      file,
      `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  labels: { data-service.dev/environment: local }
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/minscale: "1"
    spec:
      containerConcurrency: 10
      containers:
        - image: example.com/hello@sha256:${'0'.repeat(64)}
`,
    );
    const result = await knativeCheck(relative(ROOT, file));
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(
      `Service/hello: ${annotation('minscale')}: unknown annotation key: Knative ignores it, so the setting is not in effect; did you mean "autoscaling.knative.dev/min-scale"? [known-annotations]`,
    );
    expect(result.stdout).toContain('Service/hello: spec.template.spec.containers[0].livenessProbe: missing');
  }, 60_000);
});

describe('GitHub workflows', () => {
  it(
    'pass actionlint',
    async () => {
      // The version CI installs, so that this test and the lint job agree.
      const version = /ACTIONLINT_VERSION: (v[\d.]+)/.exec(
        readFileSync(join(ROOT, '.github', 'workflows', 'ci.yml'), 'utf8'),
      )?.[1];
      expect(version).toBeDefined();
      const binDir = join(ROOT, '.cache', 'bin');
      const binary = join(binDir, `actionlint-${version}`);
      if (!existsSync(binary)) {
        const install = await run('go', ['install', `github.com/rhysd/actionlint/cmd/actionlint@${version}`], {
          ...process.env,
          GOBIN: join(binDir, `actionlint-${version}.d`),
          GOFLAGS: '',
        });
        expect({ status: install.status, stderr: install.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
        renameSync(join(binDir, `actionlint-${version}.d`, 'actionlint'), binary);
        rmSync(join(binDir, `actionlint-${version}.d`), { recursive: true, force: true });
      }
      const lint = await run(binary, ['-no-color']);
      expect({ status: lint.status, output: lint.stdout + lint.stderr }).toEqual({ status: 0, output: '' });
    },
    BUILD_TIMEOUT_MS,
  );
});
