/**
 * The one helper module for processes and ports, shared by every script (services, test runner, bench, load
 * runs) and by the tests' own process helpers: the repository root, children started with a time bound and
 * stopped on every exit path, waiting for a condition or an HTTP answer, a free port, Debian tools installed on
 * demand, /proc readings, and percentiles. Spawning is execa's, free ports get-port's, polling p-wait-for's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, execaSync } from 'execa';
import getPort from 'get-port';
import pWaitFor from 'p-wait-for';

export { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const isRoot = process.getuid?.() === 0;

/** A logger that writes `[tag] message` lines to stderr (stdout stays for results). */
export const logger =
  (tag: string) =>
  (message: string): void => {
    process.stderr.write(`[${tag}] ${message}\n`);
  };

/** A TCP port free on 127.0.0.1 a moment ago (get-port also avoids handing out the same port twice in a row). */
export const freePort = (): Promise<number> => getPort({ host: '127.0.0.1' });

/** Polls `check` until it returns something other than undefined; rejects naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => T | undefined | Promise<T | undefined>,
  intervalMs = 250,
): Promise<T> {
  return pWaitFor(
    async () => {
      const value = await check();
      return value === undefined ? false : pWaitFor.resolveWith(value);
    },
    {
      interval: intervalMs,
      timeout: { milliseconds: timeoutMs, message: new Error(`timed out after ${timeoutMs} ms waiting for ${what}`) },
    },
  );
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number, timeoutMs = 1_000): Promise<boolean> {
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

/** The status of one GET (0 when nothing answered within `timeoutMs`). */
export async function httpStatus(
  url: string,
  timeoutMs = 1_000,
  headers: Readonly<Record<string, string>> = {},
): Promise<number> {
  try {
    const response = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** Polls `url` until it answers 200 and resolves with the ms since `since`; fails early if `process` exits. */
export async function waitForHttp(
  url: string,
  options: { since?: number; timeoutMs?: number; intervalMs?: number; process?: { exited: Promise<unknown> } },
): Promise<number> {
  let exited = false;
  void options.process?.exited.then(() => {
    exited = true;
  });
  await waitFor(
    `${url} to answer 200`,
    options.timeoutMs ?? 15_000,
    async () => {
      if (exited) throw new Error(`the process exited before ${url} answered`);
      return (await httpStatus(url, 500)) === 200 ? true : undefined;
    },
    options.intervalMs ?? 20,
  );
  return performance.now() - (options.since ?? 0);
}

/** Every long-running child started here and not yet exited: `stopAll` ends them on any exit path. */
const children = new Set<Started>();

export interface Started {
  readonly pid: number;
  /** `performance.now()` just before the spawn. */
  readonly spawnedAt: number;
  readonly exited: Promise<number | undefined>;
  /** The last 8 KiB of its output, for error messages. */
  tail(): string;
  /** SIGTERM, SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a server-like process: stdout discarded unless `onStdout`, stderr kept as a tail; killed if we exit. */
export function startProcess(
  file: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; onStdout?: (chunk: string) => void },
): Started {
  const spawnedAt = performance.now();
  const child = execa(file, args, {
    env: options.env,
    extendEnv: false,
    cwd: options.cwd ?? ROOT,
    stdin: 'ignore',
    stdout: options.onStdout ? 'pipe' : 'ignore',
    stderr: 'pipe',
    buffer: false,
    reject: false,
  });
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  let tail = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-8192);
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-8192);
    options.onStdout?.(chunk);
  });
  let running = true;
  const exited = child.then((result) => {
    running = false;
    return result.exitCode;
  });
  const started: Started = {
    pid: child.pid,
    spawnedAt,
    exited,
    tail: () => tail,
    async stop(graceMs = 10_000) {
      if (running) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  children.add(started);
  void exited.then(() => children.delete(started));
  return started;
}

/** Stops every child `startProcess` started that still runs (execa kills them anyway if we exit first). */
export async function stopAll(graceMs = 5_000): Promise<void> {
  await Promise.all([...children].map((child) => child.stop(graceMs)));
}

export interface RunResult {
  readonly exitCode: number | undefined;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command to completion within `timeoutMs` (SIGKILL then); never rejects on a non-zero exit. `onSpawn`
 * gets the pid (to sample its CPU while it runs).
 */
export async function run(
  file: string,
  args: readonly string[],
  options: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string; onSpawn?: (pid: number) => void },
): Promise<RunResult> {
  const child = execa(file, args, {
    timeout: options.timeoutMs,
    reject: false,
    stdin: 'ignore',
    cwd: options.cwd ?? ROOT,
    ...(options.env !== undefined && { env: options.env, extendEnv: false }),
  });
  if (child.pid !== undefined) options.onSpawn?.(child.pid);
  const { exitCode, timedOut, stdout, stderr } = await child;
  return { exitCode, timedOut, stdout, stderr };
}

/** Like `run`, but resolves with stdout and throws, with the output, on failure. */
export async function runOk(
  file: string,
  args: readonly string[],
  options: Parameters<typeof run>[2],
): Promise<string> {
  const result = await run(file, args, options);
  if (result.exitCode !== 0) {
    const why = result.timedOut ? `killed after ${options.timeoutMs} ms` : `exit ${result.exitCode}`;
    throw new Error(`${file} ${args.join(' ')} failed (${why}):\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/** Whether `command` is on PATH (or is an executable path). */
export const hasCommand = (command: string): boolean =>
  execaSync('sh', ['-c', `command -v ${command}`], { reject: false, stdio: 'ignore' }).exitCode === 0;

let aptUpdated = false;

/** Installs Debian packages with apt-get when we are root (updating the lists once); otherwise says what to run. */
export function aptInstall(packages: readonly string[], why: string): void {
  if (!isRoot) throw new Error(`${why} is not installed; run: sudo apt-get install -y ${packages.join(' ')}`);
  logger('apt')(`installing ${packages.join(' ')} (${why}) from Debian packages…`);
  const apt = (args: string[]) =>
    execaSync('apt-get', args, {
      reject: false,
      stdio: ['ignore', process.stderr, process.stderr],
      env: { DEBIAN_FRONTEND: 'noninteractive' },
    }).exitCode === 0;
  const install = ['install', '-y', '-qq', '--no-install-recommends', ...packages];
  if (apt(install)) return;
  if (!aptUpdated && apt(['update', '-qq'])) aptUpdated = true;
  if (!apt(install)) throw new Error(`apt-get install ${packages.join(' ')} failed (see above)`);
}

/** `command`, installed from the Debian package `pkg` first when it is missing. */
export function ensureCommand(command: string, pkg: string): string {
  if (!hasCommand(command)) aptInstall([pkg], command);
  if (!hasCommand(command)) throw new Error(`installing ${pkg} did not provide ${command}`);
  return command;
}

/** Nearest-rank percentile (`p` in 0…100) of `values`, which need not be sorted; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

// --- /proc -------------------------------------------------------------------------------------------------------

export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  readonly state: string;
  /** utime + stime + cutime + cstime in seconds: with the reaped children's, so exited backends still count. */
  readonly cpuSeconds: number;
}

const TICKS_PER_SECOND = 100;

/** One process's /proc/<pid>/stat (undefined when it is gone). */
export function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    // Fields after "pid (comm) ": state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    const f = text.slice(close + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    return {
      pid,
      ppid: Number(f[1]),
      comm: text.slice(text.indexOf('(') + 1, close),
      state: f[0] ?? '?',
      cpuSeconds: ticks / TICKS_PER_SECOND,
    };
  } catch {
    return undefined;
  }
}

/** Every process on the machine, by pid. */
export function procTable(): Map<number, ProcStat> {
  const table = new Map<number, ProcStat>();
  for (const entry of readdirSync('/proc')) {
    const stat = /^\d+$/.test(entry) ? procStat(Number(entry)) : undefined;
    if (stat !== undefined) table.set(stat.pid, stat);
  }
  return table;
}

/** Whether `pid` runs (a zombie, exited but not reaped, does not). */
export const alive = (pid: number): boolean => {
  const state = procStat(pid)?.state;
  return state !== undefined && state !== 'Z';
};

/** The command line of a process, arguments joined by spaces ('' when it is gone). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Resident set size in MiB (0 when the process is gone). */
export function rssMiB(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** Peak resident set size in MiB since the process started (VmHWM; 0 when the process is gone). */
export function peakRssMiB(pid: number): number {
  try {
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** Sends SIGTERM, waits up to `graceMs` for every pid to exit, then SIGKILLs what is left and waits again. */
export async function terminate(pids: readonly number[], what: string, graceMs: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  const gone = () => (pids.some(alive) ? undefined : true);
  signal('SIGTERM');
  try {
    await waitFor(`${what} to exit`, graceMs, gone);
  } catch {
    logger('processes')(`${what} did not exit within ${Math.round(graceMs / 1000)} s of SIGTERM; sending SIGKILL`);
    signal('SIGKILL');
    await waitFor(`${what} to exit after SIGKILL`, 10_000, gone);
  }
}
