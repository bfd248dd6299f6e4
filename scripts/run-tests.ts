/**
 * The test entry behind `npm test`: brings the backing services up (once per run; left running if they already
 * were), runs jest with their settings, and brings down what it started. `unit` needs no services.
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const suite = process.argv[2] ?? 'all';
const jestArgs = process.argv.slice(3);
const projects = suite === 'all' ? ['unit', 'integration'] : [suite];

const env: NodeJS.ProcessEnv = { ...process.env };
let startedServices: string[] = [];
if (projects.includes('integration')) {
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
  startedServices = stopped;
}

const jest = spawnSync(
  process.execPath,
  [
    '--experimental-vm-modules',
    '--disable-warning=ExperimentalWarning',
    'node_modules/jest/bin/jest.js',
    ...projects.flatMap((p) => ['--selectProjects', p]),
    ...jestArgs,
  ],
  { cwd: ROOT, env, stdio: 'inherit' },
);

if (startedServices.length > 0 && !process.env.KEEP_SERVICES) {
  spawnSync(process.execPath, ['scripts/services.ts', 'down', ...startedServices], { cwd: ROOT, stdio: 'inherit' });
}
process.exit(jest.status ?? 1);
