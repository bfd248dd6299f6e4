/**
 * Processes for the bench: spawn with a hard time limit, remember every child so that any exit path (normal end,
 * error, Ctrl-C, the global deadline) stops them, and read CPU time and RSS from /proc.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';

export const say = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Every child this process started and has not yet seen exit. */
const children = new Set<ChildProcess>();
/** Children started in a process group of their own (tools run through bash): signalled as a group. */
const groups = new WeakSet<ChildProcess>();

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (groups.has(child) && child.pid !== undefined) process.kill(-child.pid, sig);
    else child.kill(sig);
  } catch {
    // already gone
  }
}

export interface Started {
  readonly child: ChildProcess;
  readonly pid: number;
  /** `performance.now()` just before spawn. */
  readonly spawnedAt: number;
  readonly exited: Promise<number | null>;
  /** The last 4 KiB of stderr (and stdout when piped), for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a long-running process (a server) whose stdout is discarded and stderr kept for diagnostics. */
export function start(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { keepStdout?: boolean } = {},
): Started {
  const spawnedAt = performance.now();
  const child = spawn(command, args, {
    env,
    stdio: ['ignore', options.keepStdout ? 'pipe' : 'ignore', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  children.add(child);
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4096);
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  const exited = new Promise<number | null>((done) => {
    child.once('exit', (code) => {
      children.delete(child);
      done(code);
    });
  });
  return {
    child,
    pid: child.pid,
    spawnedAt,
    exited,
    tail: () => tail,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion, killed (SIGKILL) after `timeoutMs`; never rejects on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string },
): Promise<RunResult> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that a timeout or an abort also stops what bash started.
      detached: true,
    });
    children.add(child);
    groups.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => signal(child, 'SIGKILL'), options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      fail(error);
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      children.delete(child);
      if (sig === 'SIGKILL') stderr += `\n(killed after ${options.timeoutMs} ms)`;
      done({ code, stdout, stderr });
    });
  });
}

/** Like `run`, but throws with the output when the exit code is not 0. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string },
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.code}):\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Runs a load generator to completion through bash, whose `times` builtin then reports the CPU the child used
 * (user + system seconds), so the generator's share of the cores is known exactly.
 */
export async function runTimed(
  command: string,
  args: readonly string[],
  options: { timeoutMs: number; cwd?: string },
): Promise<RunResult & { cpuSeconds: number }> {
  const result = await run(
    'bash',
    ['-c', '"$@"; rc=$?; echo BENCH_TIMES; times; exit $rc', 'bash', command, ...args],
    options,
  );
  const [stdout = '', timesPart = ''] = result.stdout.split(/\n?BENCH_TIMES\n/);
  // `times` prints two lines: the shell's own user/system time, then its children's.
  const childLine = timesPart.trim().split('\n')[1] ?? '';
  const cpuSeconds = [...childLine.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
    (sum, m) => sum + Number(m[1]) * 60 + Number(m[2]),
    0,
  );
  return { ...result, stdout, cpuSeconds };
}

/** Stops every child still running: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopAll(graceMs = 5_000): Promise<void> {
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    alive.map(
      (child) =>
        new Promise<void>((done) => {
          const timer = setTimeout(() => signal(child, 'SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(timer);
            done();
          });
          signal(child, 'SIGTERM');
        }),
    ),
  );
}

/** Last resort on a synchronous exit: SIGKILL whatever is left. */
export function killAllNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) signal(child, 'SIGKILL');
  }
}

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

/** One GET on a fresh connection; resolves with the status (0 on any error). */
export function probe(port: number, path: string, timeoutMs = 1_000): Promise<number> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => done(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => done(0));
    req.end();
  });
}

/** Polls `path` every `intervalMs` until it answers 200; resolves with ms since `since`. */
export async function waitForAnswer(
  started: Started,
  port: number,
  path: string,
  timeoutMs: number,
  intervalMs = 5,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let exited = false;
  void started.exited.then(() => {
    exited = true;
  });
  while (performance.now() < deadline) {
    if (exited) throw new Error(`process ${started.pid} exited while starting:\n${started.tail()}`);
    if ((await probe(port, path, 500)) === 200) return performance.now() - started.spawnedAt;
    await sleep(intervalMs);
  }
  throw new Error(`127.0.0.1:${port}${path} did not answer 200 within ${timeoutMs} ms:\n${started.tail()}`);
}

const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of one process so far (0 when it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU seconds of every process whose command name is `comm` (e.g. all PostgreSQL backends), by pid. */
export function cpuByComm(comm: string): Map<number, number> {
  const found = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const name = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (name === comm) found.set(Number(entry), cpuSeconds(Number(entry)));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((sum, v) => sum + v, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

/** Resident set size of a process in MiB (0 when it is gone). */
export function rssMiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}
