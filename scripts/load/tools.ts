/**
 * The load generators, fetched on first use: vegeta (MIT) built from its Go module into .cache/bin (gitignored),
 * wrk (Apache-2.0) from Debian. k6 is deliberately absent: AGPL, kept out of this toolchain.
 */
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@v12.13.0';
const BIN = join(ROOT, '.cache', 'bin');

export const say = (message: string): void => {
  process.stderr.write(`[load] ${message}\n`);
};

/** The vegeta binary, installed with `go install` into .cache/bin when missing. */
export function ensureVegeta(): string {
  const path = join(BIN, 'vegeta');
  if (existsSync(path)) return path;
  say(`installing vegeta (${VEGETA_MODULE}) into .cache/bin with go install…`);
  const go = spawnSync('go', ['install', VEGETA_MODULE], {
    cwd: ROOT,
    env: { ...process.env, GOBIN: BIN, CGO_ENABLED: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (go.error !== undefined || go.status !== 0 || !existsSync(path)) {
    throw new Error(
      `go install ${VEGETA_MODULE} failed (${go.error?.message ?? `exit ${go.status}`}); is Go installed?`,
    );
  }
  return path;
}

/** The wrk binary, from Debian's package (apt-get install when missing and root). */
export function ensureWrk(): string {
  const found = which('wrk');
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0) throw new Error('wrk is not installed: run `sudo apt-get install -y wrk`');
  say('installing wrk with apt-get…');
  const apt = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'wrk'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const installed = which('wrk');
  if (apt.status !== 0 || installed === undefined) throw new Error('apt-get install wrk failed');
  return installed;
}

function which(command: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : undefined;
}

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a tool to completion with its output collected, killed (SIGKILL) if it outlives `deadlineMs`: no run can
 * hang past its bound, whatever the tool does.
 */
export function runTool(
  command: string,
  args: readonly string[],
  deadlineMs: number,
  options: SpawnOptions & { onStdout?: (chunk: string) => void } = {},
): Promise<Finished> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      if (options.onStdout === undefined) stdout += chunk;
      else options.onStdout(chunk);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      say(`${command} ${args[0] ?? ''} ran past its ${Math.round(deadlineMs / 1000)} s bound: killing it`);
      child.kill('SIGKILL');
    }, deadlineMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}
