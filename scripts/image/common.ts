/** What the image scripts share: paths, names, logging and running commands synchronously. */
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from '../processes.ts';

export { isRoot, ROOT, sleep } from '../processes.ts';

/** Debian packages, the assembled base and measurements: gitignored (.cache/). */
export const CACHE_DIR = join(ROOT, '.cache', 'image');
export const APT_CACHE_DIR = join(CACHE_DIR, 'apt');
export const DIST_DIR = join(ROOT, 'dist');

/** The image `npm run image` builds and `npm run image:test` runs. */
export const IMAGE = 'localhost/data-service:local';
/** The bundles the image ships, one entry point each. */
export const BUNDLES = ['ingest', 'query', 'relay', 'migrate'] as const;

export const log = (message: string): void => {
  process.stderr.write(`[image] ${message}\n`);
};

export function ensureDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; never throws (a missing command is status null with the error in stderr). */
export function tryRun(cmd: string, args: readonly string[], options: SpawnSyncOptions = {}): RunResult {
  const result = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  return {
    status: result.status,
    stdout: String(result.stdout ?? ''),
    stderr: result.error ? `${result.error.message}\n${String(result.stderr ?? '')}` : String(result.stderr ?? ''),
  };
}

/** Runs a command and returns its stdout; on failure throws with the exact command line and what it printed. */
export function run(cmd: string, args: readonly string[], options: SpawnSyncOptions = {}): string {
  const result = tryRun(cmd, args, options);
  if (result.status !== 0) {
    throw new Error(
      `\`${[cmd, ...args].join(' ')}\` failed (exit ${result.status}):\n${`${result.stdout}${result.stderr}`.trim().slice(-4000)}`,
    );
  }
  return result.stdout;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
export const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

/** Whether this module is the process's entry script (so that a CLI module can also be imported). */
export const isMain = (url: string): boolean =>
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(url);
