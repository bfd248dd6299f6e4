/**
 * Fixed-rate runs for the focused benches (`bench:cache`, `bench:capacity`, `bench:growth`): vegeta attacks on
 * generated targets, measured like every bench window (scripts/bench/cost.ts), records to prefill them with,
 * skewed picks and /metrics counters.
 */
import { join } from 'node:path';
import { attack, report, target, type VegetaReport, writeTargets } from '../load/vegeta.ts';
import { type Cost, measure, trackCpu } from './cost.ts';
import { round } from './report.ts';

export interface RateOutcome {
  readonly rate: number;
  readonly requests: number;
  /** Successful responses per second. */
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** Share of requests without a 2xx/3xx. */
  readonly errorRatio: number;
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly errorSamples: readonly string[];
  readonly cost: Cost;
  /** CPU µs per request of each watched server process, and of the machine share. */
  readonly cpuUsPerRequest: Readonly<Record<string, number>>;
  readonly generatorCores: number;
}

export type Request = { readonly method: 'GET' | 'POST'; readonly url: string; readonly body?: string };

/** One attack at `rate` req/s for `seconds` over `requests` (cycled when shorter), at most `maxWorkers` in flight. */
export async function rateRun(o: {
  readonly requests: readonly Request[];
  readonly rate: number;
  readonly seconds: number;
  readonly dir: string;
  readonly name: string;
  readonly servers?: Readonly<Record<string, number>>;
  readonly maxWorkers?: number;
  /** Sent with every request (the bench's bearer token). */
  readonly headers?: Readonly<Record<string, string>>;
}): Promise<RateOutcome> {
  const targets = join(o.dir, `${o.name}.jsonl`);
  const output = join(o.dir, `${o.name}.bin`);
  const json = { ...o.headers, 'content-type': 'application/json' };
  await writeTargets(
    targets,
    o.requests.map((r) => target(r.method, r.url, r.body === undefined ? { ...o.headers } : json, r.body)),
  );
  const cpu = trackCpu();
  const servers = o.servers ?? {};
  const cost = await measure(Object.values(servers), () =>
    attack({
      targets,
      output,
      rate: o.rate,
      durationS: o.seconds,
      timeoutS: 5,
      maxWorkers: o.maxWorkers ?? 1024,
      name: o.name,
      onSpawn: cpu.onSpawn,
    }),
  );
  const r: VegetaReport = await report([output]);
  const ms = (ns: number) => round(ns / 1e6, 2);
  const per = (seconds: number) => (r.requests > 0 ? round((seconds / r.requests) * 1e6, 1) : 0);
  return {
    rate: o.rate,
    requests: r.requests,
    throughput: round(r.throughput, 1),
    p50Ms: ms(r.latencies['50th']),
    p90Ms: ms(r.latencies['90th']),
    p99Ms: ms(r.latencies['99th']),
    meanMs: ms(r.latencies.mean),
    errorRatio: round(1 - r.success, 5),
    statusCodes: r.status_codes,
    errorSamples: (r.errors ?? []).slice(0, 3),
    cost,
    cpuUsPerRequest: {
      ...Object.fromEntries(Object.entries(servers).map(([name, pid]) => [name, per(cost.byPid[pid] ?? 0)])),
      machine_share: per(cost.machineShareSeconds),
    },
    generatorCores: round(cpu.seconds() / cost.wallSeconds, 2),
  };
}

export const recordBody = (id: string, source: string, seq: number): string =>
  JSON.stringify({ id, source, type: 'reading', payload: { seq, unit: 'C', value: 21.5 } });

/** POSTs `ids` as records of `source`, 100 a request; throws at the first refused batch. */
export async function prefill(
  ingestUrl: string,
  ids: readonly string[],
  source: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<void> {
  for (let i = 0; i < ids.length; i += 100) {
    const records = ids.slice(i, i + 100).map((id, k) => JSON.parse(recordBody(id, source, i + k)) as unknown);
    const response = await fetch(`${ingestUrl}/data`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ records }),
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status !== 201) throw new Error(`prefill refused (${response.status}): ${await response.text()}`);
  }
}

/** An index into `count` items with `hotShare` of the picks on the first `hotFraction` of them (80 % on 20 %). */
export function skewedIndex(count: number, hotFraction: number, hotShare: number): number {
  const hot = Math.max(1, Math.floor(count * hotFraction));
  return Math.random() < hotShare ? Math.floor(Math.random() * hot) : hot + Math.floor(Math.random() * (count - hot));
}

/** Sum of a counter's samples in /metrics whose labels include every `labels` pair (0 when absent). */
export async function scrapeCounter(url: string, metric: string, labels: Readonly<Record<string, string>>) {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  let sum = 0;
  for (const m of text.matchAll(/^(\w+)(\{[^}]*\})?\s+([\d.eE+-]+)$/gm)) {
    if (m[1] === metric && Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) {
      sum += Number(m[3]);
    }
  }
  return sum;
}
