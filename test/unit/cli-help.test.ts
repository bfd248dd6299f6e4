/**
 * Every command of package.json answers `--help` with its usage on stdout and exit 0, before it starts, builds or
 * connects to anything (the commands run here without any service).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { ROOT } from '../../scripts/processes.ts';

const { scripts } = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> };
/** The node entry of each script (`node scripts/bench.ts ceilings` → scripts/bench.ts), each file once. */
const entries = [
  ...new Map(
    Object.entries(scripts).flatMap(([name, command]) => {
      const file = /^node (\S+\.(?:ts|mjs))\b/.exec(command)?.[1];
      return file === undefined || file === 'esbuild.config.mjs' ? [] : [[file, name] as const];
    }),
  ),
].map(([file, name]) => ({ file, name }));

describe('--help', () => {
  it('covers the commands', () => {
    expect(entries.length).toBeGreaterThan(15);
  });

  it.each(entries)('npm run $name (node $file --help) prints its usage and exits 0', ({ file }) => {
    // No service settings: a command that tried to connect or start one would fail or hang past the timeout.
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
    const result = spawnSync(process.execPath, [file, '--help'], { cwd: ROOT, env, encoding: 'utf8', timeout: 20_000 });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout).toMatch(/npm (run|start|test)|usage:/);
    expect(result.stdout.length).toBeGreaterThan(80);
  });
});
