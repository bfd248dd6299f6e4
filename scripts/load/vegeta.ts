/**
 * vegeta, driven from Node: `RequestSpec`s from load-tests/lib written as its JSON targets, constant-rate
 * attacks, and its results read back (report, plot, and every response for the contract checks).
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { LoadSettings } from '../../load-tests/lib/env.ts';
import type { RequestSpec } from '../../load-tests/lib/requests.ts';
import { functionOf } from '../../load-tests/lib/requests.ts';
import { runTool } from './tools.ts';

/** A vegeta target in its JSON format (`-format=json`): one object a line, the body in base64. */
export interface VegetaTarget {
  readonly method: string;
  readonly url: string;
  readonly header: Record<string, string[]>;
  readonly body?: string;
}

/** The absolute URL a spec goes to: POST to ingest, everything else to query. */
export function urlOf(spec: RequestSpec, settings: Pick<LoadSettings, 'ingestUrl' | 'queryUrl'>): string {
  return `${functionOf(spec) === 'ingest' ? settings.ingestUrl : settings.queryUrl}${spec.path}`;
}

export function toTarget(spec: RequestSpec, settings: Pick<LoadSettings, 'ingestUrl' | 'queryUrl'>): VegetaTarget {
  const header: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(spec.headers)) header[name] = [value];
  return {
    method: spec.method,
    url: urlOf(spec, settings),
    header,
    ...(spec.body !== undefined && { body: Buffer.from(spec.body, 'utf8').toString('base64') }),
  };
}

/** Writes `specs` as a vegeta targets file. */
export async function writeTargets(path: string, specs: Iterable<RequestSpec>, settings: LoadSettings): Promise<void> {
  const out = createWriteStream(path);
  for (const spec of specs) {
    if (!out.write(`${JSON.stringify(toTarget(spec, settings))}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}

export interface AttackOptions {
  readonly vegeta: string;
  readonly targets: string;
  readonly output: string;
  readonly rate: number;
  readonly durationS: number;
  readonly timeoutS: number;
  readonly maxWorkers: number;
  readonly name: string;
}

/** One constant-rate attack; resolves when vegeta has stopped by itself (or was killed past its bound). */
export async function attack(options: AttackOptions): Promise<void> {
  const args = [
    'attack',
    '-format=json',
    `-targets=${options.targets}`,
    `-output=${options.output}`,
    `-rate=${Math.round(options.rate)}/1s`,
    `-duration=${options.durationS}s`,
    `-timeout=${options.timeoutS}s`,
    `-max-workers=${options.maxWorkers}`,
    `-name=${options.name}`,
  ];
  const deadline = (options.durationS + options.timeoutS + 30) * 1000;
  const done = await runTool(options.vegeta, args, deadline);
  if (done.code !== 0) throw new Error(`vegeta attack failed (exit ${done.code}): ${done.stderr.trim()}`);
}

/** vegeta's own JSON report over result files. */
export async function report(vegeta: string, results: readonly string[]): Promise<VegetaReport> {
  const done = await runTool(vegeta, ['report', '-type=json', ...results], 120_000);
  if (done.code !== 0) throw new Error(`vegeta report failed: ${done.stderr.trim()}`);
  return JSON.parse(done.stdout) as VegetaReport;
}

/** vegeta's HTML latency plot over result files. */
export async function plot(vegeta: string, results: readonly string[], title: string): Promise<string> {
  const done = await runTool(vegeta, ['plot', `-title=${title}`, ...results], 120_000);
  if (done.code !== 0) throw new Error(`vegeta plot failed: ${done.stderr.trim()}`);
  return done.stdout;
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
export async function eachResult(
  vegeta: string,
  results: readonly string[],
  visit: (result: VegetaResult) => void,
): Promise<void> {
  let pending = '';
  const done = await runTool(vegeta, ['encode', '-to=json', ...results], 600_000, {
    onStdout(chunk) {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.trim() !== '') visit(JSON.parse(line) as VegetaResult);
        newline = pending.indexOf('\n');
      }
    },
  });
  if (pending.trim() !== '') visit(JSON.parse(pending) as VegetaResult);
  if (done.code !== 0) throw new Error(`vegeta encode failed: ${done.stderr.trim()}`);
}

/** The fields of `vegeta report -type=json` this runner reads. */
export interface VegetaReport {
  readonly latencies: {
    readonly total: number;
    readonly mean: number;
    readonly '50th': number;
    readonly '90th': number;
    readonly '95th': number;
    readonly '99th': number;
    readonly max: number;
    readonly min: number;
  };
  readonly duration: number;
  readonly wait: number;
  readonly requests: number;
  readonly rate: number;
  readonly throughput: number;
  readonly success: number;
  readonly status_codes: Record<string, number>;
  readonly errors: readonly string[] | null;
}
