/**
 * What the service modules share: paths, logging, running commands, installing Debian packages, and waiting for
 * processes and ports. No service-specific knowledge lives here.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Runtime state (data, pid files, logs) of the services: gitignored. */
export const SERVICES_DIR = join(ROOT, '.services');
/** Downloads kept between runs (Kafka's jars): gitignored. */
export const CACHE_DIR = join(ROOT, '.cache');
export const isRoot = process.getuid?.() === 0;

/** The settings a service prints as `export NAME=value` lines. */
export type Settings = Record<string, string>;

export interface Service {
  readonly name: string;
  /** Starts the service unless it already runs, waits until it really serves, and returns its settings. */
  up(): Promise<Settings>;
  /** Stops the service (if it runs) and waits until its processes are gone. */
  down(): Promise<void>;
  running(): Promise<boolean>;
}

export const log = (message: string) => process.stderr.write(`[services] ${message}\n`);

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export function run(
  cmd: string,
  args: string[],
  options: { asPostgres?: boolean; allowFail?: boolean; cwd?: string } = {},
): string {
  const [file, argv] = options.asPostgres && isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const result = spawnSync(file, argv, { encoding: 'utf8', cwd: options.cwd ?? '/' });
  if (result.error && !options.allowFail) throw new Error(`${cmd}: ${result.error.message}`);
  if (result.status !== 0 && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  }
  return `${result.stdout ?? ''}${result.stderr ?? ''}`;
}

/** Whether `cmd` can be executed (found on PATH). */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

let aptUpdated = false;

/** Installs Debian packages with apt-get when we are root; otherwise explains what to run. */
export function aptInstall(packages: string[], why: string): void {
  if (!isRoot) throw new Error(`${why} is not installed; run: sudo apt-get install -y ${packages.join(' ')}`);
  log(`installing ${packages.join(' ')} from Debian packages…`);
  if (!aptUpdated) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', process.stderr, process.stderr] });
    aptUpdated = true;
  }
  execFileSync('apt-get', ['install', '-y', '-qq', ...packages], {
    stdio: ['ignore', process.stderr, process.stderr],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

export function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) still answers signal 0.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The command line of a process, arguments joined by spaces ('' when it is gone). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Processes whose command line contains `needle` (not this one). */
export function findProcesses(needle: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid && cmdline(pid).includes(needle) && alive(pid));
}

/** Waits until `check` returns a value (not undefined), polling every `intervalMs`; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Sends SIGTERM, waits up to `graceMs` for the processes to exit, then SIGKILLs what is left and waits again. */
export async function terminate(pids: number[], what: string, graceMs: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  try {
    await waitFor(`${what} to exit`, graceMs, () => (pids.some(alive) ? undefined : true));
  } catch {
    log(`${what} did not exit within ${Math.round(graceMs / 1000)} s of SIGTERM; sending SIGKILL`);
    signal('SIGKILL');
    await waitFor(`${what} to exit after SIGKILL`, 10_000, () => (pids.some(alive) ? undefined : true));
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    const finish = (open: boolean) => {
      socket.destroy();
      done(open);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

export function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a TCP port`);
  return port;
}

/** The last `lines` lines of a log file, for error messages. */
export function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}
