/**
 * The test entry behind `npm test`: brings the backing services up (once per run; left running if they already
 * were), runs jest with their settings, and brings down what it started. `unit` needs no services.
 *
 * `node scripts/run-tests.ts [unit|integration|fault|all] [jest args…]`. The `fault` project stops and starts the
 * shared services, so it never runs beside other tests: `all` runs `unit` and `integration` first, then `fault` in
 * a second jest invocation with --runInBand. Every part runs; the exit status is non-zero if any part failed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helpFromHeader } from './help.ts';
import { ROOT } from './processes.ts';

helpFromHeader(import.meta.url);

const SUITES = ['unit', 'integration', 'fault', 'all'];
const suite = process.argv[2] ?? 'all';
if (!SUITES.includes(suite)) {
  process.stderr.write(`unknown suite ${suite}; use ${SUITES.join(', ')}\n`);
  process.exit(2);
}
const jestArgs = process.argv.slice(3);

/** Jest invocations, in order: projects run together, then (serially) the fault project. */
const parts: Array<{ projects: string[]; serial: boolean }> = [];
if (suite === 'all') parts.push({ projects: ['unit', 'integration'], serial: false });
else if (suite !== 'fault') parts.push({ projects: [suite], serial: false });
if (suite === 'all' || suite === 'fault') parts.push({ projects: ['fault'], serial: true });
const needsServices = parts.some((part) => part.projects.some((p) => p !== 'unit'));

const env: NodeJS.ProcessEnv = { ...process.env };
let startedServices: string[] = [];
if (needsServices) {
  // Remember what was already running: only what this run starts is stopped afterwards.
  const status = spawnSync(process.execPath, ['scripts/services.ts', 'status'], { cwd: ROOT, encoding: 'utf8' });
  const stopped = [...`${status.stdout}`.matchAll(/^(\w+) stopped$/gm)].map((m) => m[1] ?? '');
  const up = spawnSync(process.execPath, ['scripts/services.ts', 'up'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (up.status !== 0) process.exit(up.status ?? 1);
  for (const line of up.stdout.split('\n')) {
    const match = /^export (\w+)=(.*)$/.exec(line);
    if (match?.[1] && match[2] !== undefined) env[match[1]] = match[2];
  }
  if (env.TEST_DATABASE_URL !== undefined) env.DATABASE_URL = env.TEST_DATABASE_URL;
  startedServices = stopped;
}

let exitCode = 0;
const totals = { passed: 0, failed: 0, skipped: 0 };
const resultsDir = mkdtempSync(join(tmpdir(), 'data-service-tests-'));
for (const [index, part] of parts.entries()) {
  const resultsFile = join(resultsDir, `part-${index}.json`);
  const jest = spawnSync(
    process.execPath,
    [
      '--experimental-vm-modules',
      '--disable-warning=ExperimentalWarning',
      // kafkajs's retrier sets negative timers (tulios/kafkajs#1751): harmless, and noise in the test output.
      '--disable-warning=TimeoutNegativeWarning',
      'node_modules/jest/bin/jest.js',
      // Before --selectProjects, which would take a path pattern after it for one more project name.
      ...jestArgs,
      ...part.projects.flatMap((p) => ['--selectProjects', p]),
      ...(part.serial ? ['--runInBand'] : []),
      // A path or name filter given to `all` usually selects tests of one part only; the others must not fail.
      ...(parts.length > 1 && jestArgs.length > 0 ? ['--passWithNoTests'] : []),
      '--json',
      `--outputFile=${resultsFile}`,
    ],
    { cwd: ROOT, env, stdio: 'inherit' },
  );
  addCounts(resultsFile);
  const status = jest.status ?? 1;
  if (status !== 0) {
    process.stderr.write(`jest (${part.projects.join(', ')}) failed with exit status ${status}\n`);
    if (exitCode === 0) exitCode = status;
  }
}

if (startedServices.length > 0 && !process.env.KEEP_SERVICES) {
  spawnSync(process.execPath, ['scripts/services.ts', 'down', ...startedServices], { cwd: ROOT, stdio: 'inherit' });
}
rmSync(resultsDir, { recursive: true, force: true });
// One closing line for every part together (jest prints one per invocation).
process.stdout.write(`\ntests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
process.exit(exitCode);

function addCounts(file: string): void {
  if (!existsSync(file)) return;
  const result = JSON.parse(readFileSync(file, 'utf8')) as {
    numPassedTests?: number;
    numFailedTests?: number;
    numPendingTests?: number;
    numTodoTests?: number;
  };
  totals.passed += result.numPassedTests ?? 0;
  totals.failed += result.numFailedTests ?? 0;
  totals.skipped += (result.numPendingTests ?? 0) + (result.numTodoTests ?? 0);
}
