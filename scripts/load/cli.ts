/**
 * Command line and environment of `npm run load:<name>`: the same variables as the k6 scripts (BASE_URL,
 * TARGET_RPS, DURATION, READ_RATIO, BATCH_SIZE, …), each also a flag, with defaults sized for this 2-core
 * machine. Refuses any host but loopback and any run without bounds.
 */
import { parseArgs } from 'node:util';
import { BASE_DEFAULTS, type LoadSettings, parseSettings, type SettingsDefaults } from '../../load-tests/lib/env.ts';

export const LOCAL_RUNS = ['smoke', 'slo', 'soak', 'spike', 'mixed', 'max'] as const;
export type LocalRun = (typeof LOCAL_RUNS)[number];

/** Defaults of the local runs: small enough for a shared 2-core machine that also runs the service. */
export const LOCAL_DEFAULTS: Readonly<Record<LocalRun, SettingsDefaults>> = {
  smoke: { ...BASE_DEFAULTS, targetRps: 20, durationS: 2, batchSize: 5, prefill: 50, vus: 1, maxVus: 50 },
  slo: { ...BASE_DEFAULTS, targetRps: 500, durationS: 30, maxVus: 1000 },
  soak: { ...BASE_DEFAULTS, targetRps: 100, durationS: 600, maxVus: 1000 },
  spike: { ...BASE_DEFAULTS, targetRps: 500, rampS: 5, durationS: 10, maxVus: 1000 },
  mixed: { ...BASE_DEFAULTS, targetRps: 300, durationS: 30, maxVus: 1000 },
  // wrk is closed-loop: VUS connections on 2 threads as fast as the service answers.
  max: { ...BASE_DEFAULTS, durationS: 10, vus: 32, maxVus: 32 },
};

/** Hard bounds of a local run, whatever the settings say. */
export const LOCAL_LIMITS = { maxRps: 20_000, maxDurationS: 4 * 3600, maxConnections: 1_000 } as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export interface CliOptions {
  readonly run: LocalRun;
  readonly settings: LoadSettings;
  /** Start the service (node scripts/start.ts) on a free port for the run, and stop it afterwards. */
  readonly start: boolean;
  /** Where the results go; default load-results/<run>-<timestamp>/. */
  readonly outDir: string | undefined;
}

const FLAGS = {
  url: 'BASE_URL',
  'ingest-url': 'INGEST_URL',
  'query-url': 'QUERY_URL',
  rate: 'TARGET_RPS',
  duration: 'DURATION',
  ramp: 'RAMP',
  'read-ratio': 'READ_RATIO',
  'batch-size': 'BATCH_SIZE',
  vus: 'VUS',
  'max-vus': 'MAX_VUS',
  seed: 'SEED',
  prefill: 'PREFILL',
  sources: 'SOURCES',
  'payload-bytes': 'PAYLOAD_BYTES',
  timeout: 'TIMEOUT',
} as const;

export const USAGE = `usage: node scripts/load.ts <${LOCAL_RUNS.join('|')}> [--start] [--out DIR] ${Object.keys(FLAGS)
  .map((flag) => `[--${flag} V]`)
  .join(' ')}
Each flag may instead be given as its environment variable (${Object.values(FLAGS).join(', ')}).
TOKEN (environment only): the bearer token every request carries, e.g.
  TOKEN=$(npm run -s token -- --write '*' --read '*' | tail -1) npm run load:smoke`;

/** Parses argv (after `node scripts/load.ts`) and the environment; throws with every problem named. */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv): CliOptions {
  const options = Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' as const }]));
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { ...options, start: { type: 'boolean' }, out: { type: 'string' } },
  });
  const run = positionals[0];
  if (positionals.length !== 1 || !LOCAL_RUNS.includes(run as LocalRun)) {
    throw new Error(`name one run of ${LOCAL_RUNS.join(', ')}\n${USAGE}`);
  }
  // The token only from the environment: a flag would leave it in the shell history and `ps`.
  const merged: Record<string, string | undefined> = { TOKEN: env.TOKEN };
  for (const name of Object.values(FLAGS)) merged[name] = env[name];
  for (const [flag, name] of Object.entries(FLAGS)) {
    const value = (values as Record<string, string | boolean | undefined>)[flag];
    if (typeof value === 'string') merged[name] = value;
  }
  const settings = parseSettings(merged, LOCAL_DEFAULTS[run as LocalRun]);
  checkLocal(settings, run as LocalRun);
  return { run: run as LocalRun, settings, start: values.start === true, outDir: values.out };
}

/** Loopback only, and bounded: a local run can never be aimed at someone else's service or run forever. */
export function checkLocal(settings: LoadSettings, run: LocalRun): void {
  const problems: string[] = [];
  const urls = new Map([
    [settings.baseUrl, 'BASE_URL'],
    [settings.ingestUrl, 'INGEST_URL'],
    [settings.queryUrl, 'QUERY_URL'],
  ]);
  for (const [url, name] of urls) {
    const host = new URL(url).hostname;
    if (!LOOPBACK_HOSTS.has(host)) {
      problems.push(`${name}=${url}: the local runner only targets 127.0.0.1, ::1 or localhost (use k6 for a route)`);
    }
  }
  if (settings.targetRps > LOCAL_LIMITS.maxRps)
    problems.push(`TARGET_RPS=${settings.targetRps}: at most ${LOCAL_LIMITS.maxRps} here`);
  const total = settings.durationS + (run === 'spike' ? 2 * settings.rampS : 0);
  if (total > LOCAL_LIMITS.maxDurationS)
    problems.push(`DURATION (+ 2 × RAMP for spike) is ${total} s: at most ${LOCAL_LIMITS.maxDurationS} s here`);
  if (settings.maxVus > LOCAL_LIMITS.maxConnections)
    problems.push(`MAX_VUS=${settings.maxVus}: at most ${LOCAL_LIMITS.maxConnections} here`);
  if (problems.length > 0) throw new Error(`refusing to run:\n  ${problems.join('\n  ')}`);
}
