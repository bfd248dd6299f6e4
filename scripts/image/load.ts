/**
 * A short, bounded load run with Debian's wrk against 127.0.0.1 only: fixed duration, fixed connections, a
 * per-request timeout, and a kill if wrk itself overstays.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, ensureDir } from './common.ts';

export interface LoadRun {
  readonly label: string;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Responses outside 2xx/3xx. */
  readonly non2xx: number;
  /** wrk's socket errors: connect, read, write, timeout. */
  readonly socketErrors: number;
  readonly output: string;
}

export interface LoadOptions {
  readonly label: string;
  readonly url: string;
  readonly seconds: number;
  readonly connections: number;
  /** A POST body (JSON); without one, GETs. */
  readonly body?: string;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  if (unit === 'us') return n / 1000;
  if (unit === 's') return n * 1000;
  if (unit === 'm') return n * 60_000;
  return n;
}

export function parseWrk(label: string, output: string): LoadRun {
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    return match?.[1] && match[2] ? toMs(match[1], match[2]) : Number.NaN;
  };
  const max = /^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)/m.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    label,
    requests: Number(/^\s*(\d+) requests in/m.exec(output)?.[1] ?? Number.NaN),
    requestsPerSecond: Number(/^Requests\/sec:\s+([\d.]+)/m.exec(output)?.[1] ?? Number.NaN),
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    maxMs: max?.[1] && max[2] ? toMs(max[1], max[2]) : Number.NaN,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    output,
  };
}

export function runWrk(options: LoadOptions): Promise<LoadRun> {
  const url = new URL(options.url);
  if (url.hostname !== '127.0.0.1') throw new Error(`load runs target 127.0.0.1 only, not ${url.hostname}`);
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--timeout', '5s', '--latency'];
  if (options.body !== undefined) {
    const script = join(ensureDir(join(CACHE_DIR, 'run')), `${options.label.replace(/\W+/g, '-')}.lua`);
    writeFileSync(
      script,
      `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(options.body)}\n`,
    );
    args.push('-s', script);
  }
  args.push(options.url);
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), (options.seconds + 15) * 1000);
    child.once('error', (error) => {
      clearTimeout(guard);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(guard);
      if (code === 0) resolve(parseWrk(options.label, output));
      else reject(new Error(`wrk ${args.join(' ')} exited ${code}:\n${output}`));
    });
  });
}
