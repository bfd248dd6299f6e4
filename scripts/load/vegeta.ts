/**
 * vegeta (MIT), the constant-rate load generator of the load runs and the rate-driven benches, driven from Node:
 * installed with `go install` into .cache/bin on first use, targets written in its JSON format, attacks bounded
 * in time, and its results read back (report, plot, and every response for the contract checks).
 */
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { LoadSettings } from '../../load-tests/lib/env.ts';
import type { RequestSpec } from '../../load-tests/lib/requests.ts';
import { functionOf, headersOf } from '../../load-tests/lib/requests.ts';
import { logger, ROOT, run, runOk } from '../processes.ts';

export const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@v12.13.0';

/** The vegeta binary, installed with `go install` into .cache/bin when missing. */
export async function ensureVegeta(): Promise<string> {
  const bin = join(ROOT, '.cache', 'bin');
  const path = join(bin, 'vegeta');
  if (existsSync(path)) return path;
  logger('load')(`installing vegeta (${VEGETA_MODULE}) into .cache/bin with go install…`);
  await runOk('go', ['install', VEGETA_MODULE], {
    timeoutMs: 600_000,
    env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0' },
  });
  return path;
}

/** A vegeta target in its JSON format (`-format=json`): one object a line, the body in base64. */
export interface VegetaTarget {
  readonly method: string;
  readonly url: string;
  readonly header: Record<string, string[]>;
  readonly body?: string;
}

/** The absolute URL a spec goes to: POST to ingest, everything else to query. */
export const urlOf = (spec: RequestSpec, settings: Pick<LoadSettings, 'ingestUrl' | 'queryUrl'>): string =>
  `${functionOf(spec) === 'ingest' ? settings.ingestUrl : settings.queryUrl}${spec.path}`;

/** A target from a method, an absolute URL, headers and a text body. */
export const target = (method: string, url: string, headers: Record<string, string> = {}, body?: string) => ({
  method,
  url,
  header: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
  ...(body !== undefined && { body: Buffer.from(body, 'utf8').toString('base64') }),
});

export const toTarget = (
  spec: RequestSpec,
  settings: Pick<LoadSettings, 'ingestUrl' | 'queryUrl' | 'token'>,
): VegetaTarget => target(spec.method, urlOf(spec, settings), headersOf(spec, settings), spec.body);

/** Writes a targets file, one JSON target a line. */
export async function writeTargets(path: string, targets: Iterable<VegetaTarget>): Promise<void> {
  const out = createWriteStream(path);
  for (const t of targets) if (!out.write(`${JSON.stringify(t)}\n`)) await once(out, 'drain');
  out.end();
  await once(out, 'close');
}

export interface AttackOptions {
  readonly targets: string;
  readonly output: string;
  readonly rate: number;
  readonly durationS: number;
  readonly timeoutS: number;
  readonly maxWorkers: number;
  readonly name: string;
  readonly onSpawn?: (pid: number) => void;
}

/** One constant-rate attack; resolves when vegeta has stopped by itself (or was killed past its bound). */
export async function attack(o: AttackOptions): Promise<void> {
  const args = [
    ...['attack', '-format=json', `-targets=${o.targets}`, `-output=${o.output}`, `-rate=${Math.round(o.rate)}/1s`],
    ...[`-duration=${o.durationS}s`, `-timeout=${o.timeoutS}s`, `-max-workers=${o.maxWorkers}`, `-name=${o.name}`],
  ];
  const done = await run(await ensureVegeta(), args, {
    timeoutMs: (o.durationS + o.timeoutS + 30) * 1000,
    ...(o.onSpawn !== undefined && { onSpawn: o.onSpawn }),
  });
  if (done.exitCode !== 0) throw new Error(`vegeta attack failed (exit ${done.exitCode}): ${done.stderr.trim()}`);
}

/** vegeta's own JSON report over result files. */
export async function report(results: readonly string[]): Promise<VegetaReport> {
  return JSON.parse(await runOk(await ensureVegeta(), ['report', '-type=json', ...results], { timeoutMs: 120_000 }));
}

/** vegeta's HTML latency plot over result files. */
export async function plot(results: readonly string[], title: string): Promise<string> {
  return runOk(await ensureVegeta(), ['plot', `-title=${title}`, ...results], { timeoutMs: 120_000 });
}

/** One result of `vegeta encode -to=json`. */
export interface VegetaResult {
  readonly attack: string;
  readonly seq: number;
  readonly code: number;
  readonly timestamp: string;
  /** Nanoseconds. */
  readonly latency: number;
  readonly error: string;
  /** Base64. */
  readonly body: string | null;
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string[]> | null;
}

/** Streams every result of the files to `visit`, one at a time (a soak holds too many to keep as text). */
export async function eachResult(results: readonly string[], visit: (result: VegetaResult) => void): Promise<void> {
  const encode = execa(await ensureVegeta(), ['encode', '-to=json', ...results], { timeout: 600_000, buffer: false });
  for await (const line of encode) if (line.trim() !== '') visit(JSON.parse(line) as VegetaResult);
  await encode;
}

/** The fields of `vegeta report -type=json` these scripts read (latencies in ns). */
export interface VegetaReport {
  readonly latencies: Readonly<Record<'total' | 'mean' | '50th' | '90th' | '95th' | '99th' | 'max' | 'min', number>>;
  readonly duration: number;
  readonly wait: number;
  readonly requests: number;
  readonly rate: number;
  readonly throughput: number;
  readonly success: number;
  readonly status_codes: Record<string, number>;
  readonly errors: readonly string[] | null;
}
