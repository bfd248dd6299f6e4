/**
 * What a backing service module (postgres.ts, redis.ts, kafka.ts) implements, and what only they share: their
 * state folders, port settings, pid files, log tails and synchronous commands (run as `postgres` where needed).
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { alive, cmdline, isRoot, logger, ROOT } from '../processes.ts';

/** Runtime state (data, pid files, logs) of the services: gitignored. */
export const SERVICES_DIR = join(ROOT, '.services');
/** Downloads kept between runs (Kafka's jars): gitignored. */
export const CACHE_DIR = join(ROOT, '.cache');

/** The settings a service prints as `export NAME=value` lines. */
export type Settings = Record<string, string>;

export interface Service {
  readonly name: string;
  /** Starts the service unless it already runs, waits until it really serves, and returns its settings. */
  up(): Promise<Settings>;
  /** Stops the service (if it runs) and waits until its processes are gone. */
  down(): Promise<void>;
  running(): Promise<boolean>;
  /** The root processes of the running service (their trees are what it costs the machine). */
  pids(): number[];
}

export const log = logger('services');

/** Runs a short command synchronously; throws with its output on failure unless `allowFail`. */
export function runSync(
  cmd: string,
  args: readonly string[],
  options: { asPostgres?: boolean; allowFail?: boolean; cwd?: string } = {},
): string {
  const [file, argv] = options.asPostgres && isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const result = execaSync(file, argv, { reject: false, cwd: options.cwd ?? '/', all: true, stdin: 'ignore' });
  if (result.exitCode !== 0 && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${result.exitCode ?? result.originalMessage}):\n${result.all}`);
  }
  return result.all ?? '';
}

export function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a TCP port`);
  return port;
}

/** The pid in a pid file when that process is alive and its command line contains `needle`. */
export function livePid(file: string, needle: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]?.trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) && cmdline(pid).includes(needle) ? pid : undefined;
}

/** Processes whose command line contains `needle` (not this one). */
export const findProcesses = (needle: string): number[] =>
  readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid && cmdline(pid).includes(needle) && alive(pid));

/** The last `lines` lines of a log file, for error messages. */
export const tail = (file: string, lines = 30): string =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '(no log)';
