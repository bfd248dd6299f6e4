/**
 * Real processes for tests: spawn a bundle (or any script) with its own environment, collect its output, wait for
 * it to answer a readiness URL, and make sure it is gone when the test ends. Ports, sleeps and HTTP polling are
 * the scripts' own helpers (scripts/processes.ts), re-exported here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ROOT, waitForHttp } from '../../scripts/processes.ts';

export { connectOutcome } from '../../scripts/image/http.ts';
export { freePort, ROOT, sleep } from '../../scripts/processes.ts';
export const DIST = resolve(ROOT, 'dist');

/** The absolute path of `dist/<name>.mjs`, or an error telling how to build it. */
export function bundlePath(name: string): string {
  const path = resolve(DIST, `${name}.mjs`);
  if (!existsSync(path)) {
    throw new Error(
      `${path} does not exist: build the bundles first with \`node esbuild.config.mjs\` (npm run build).`,
    );
  }
  return path;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Milliseconds from spawn to exit. */
  readonly afterMs: number;
}

export interface SpawnedProcess {
  readonly child: ChildProcess;
  readonly startedAt: number;
  /** Everything written to stdout/stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Complete stdout lines so far. */
  stdoutLines(): string[];
  /** Resolves when the process exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** Resolves with the exit, or rejects after `timeoutMs`. */
  waitForExit(timeoutMs: number): Promise<Exit>;
  /** Resolves when a stdout line satisfies `match`, or rejects after `timeoutMs` or on exit. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
}

/** Spawns `node <script> ...args` with exactly `env` (plus PATH), output piped and collected. */
export function spawnNode(
  script: string,
  env: Record<string, string | undefined>,
  args: string[] = [],
): SpawnedProcess {
  const cleanEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries({ PATH: process.env.PATH, ...env })) {
    if (value !== undefined) cleanEnv[key] = value;
  }
  const startedAt = performance.now();
  const child = spawn(process.execPath, [script, ...args], {
    cwd: ROOT,
    env: cleanEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const lineWaiters = new Set<() => void>();
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const check of lineWaiters) check();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<Exit>((resolveExit) => {
    child.once('error', () => resolveExit({ code: null, signal: null, afterMs: performance.now() - startedAt }));
    child.once('close', (code, signal) => {
      for (const check of lineWaiters) check();
      resolveExit({ code, signal, afterMs: performance.now() - startedAt });
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    for (const check of lineWaiters) check();
  });
  const stdoutLines = () => out.split('\n').slice(0, -1);

  return {
    child,
    startedAt,
    stdout: () => out,
    stderr: () => err,
    stdoutLines,
    exited,
    waitForExit: (timeoutMs) =>
      withTimeout(exited, timeoutMs, () => `process did not exit within ${timeoutMs} ms; stderr: ${err.slice(-2000)}`),
    waitForLine: (match, timeoutMs) =>
      withTimeout(
        new Promise<string>((resolveLine, reject) => {
          const check = () => {
            const found = stdoutLines().find(match);
            if (found !== undefined) {
              lineWaiters.delete(check);
              resolveLine(found);
            } else if (hasExited) {
              lineWaiters.delete(check);
              reject(new Error(`process exited without the expected line; stdout: ${out.slice(-2000)}`));
            }
          };
          lineWaiters.add(check);
          check();
        }),
        timeoutMs,
        () => `no matching stdout line within ${timeoutMs} ms; stdout: ${out.slice(-2000)}`,
      ),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Polls `url` every `intervalMs` until it answers 200; resolves with the milliseconds since `since`
 * (a `performance.now()` value). Rejects after `timeoutMs`, or as soon as `process` exited.
 */
export async function waitForReady(
  url: string,
  options: { since: number; intervalMs?: number; timeoutMs?: number; process?: SpawnedProcess },
): Promise<number> {
  try {
    return await waitForHttp(url, {
      since: options.since,
      intervalMs: options.intervalMs ?? 20,
      timeoutMs: options.timeoutMs ?? 15_000,
      ...(options.process !== undefined && { process: options.process }),
    });
  } catch (error) {
    throw new Error(`${String(error)}; stderr: ${options.process?.stderr().slice(-2000) ?? ''}`);
  }
}

/** Races `promise` against a timer that rejects with `message()`; the timer never outlives the race. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
