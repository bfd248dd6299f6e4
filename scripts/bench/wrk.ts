/**
 * wrk (Debian's package), closed loop, as the HTTP load generator of `npm run bench` and `npm run load:max`.
 * Requests come from Lua scripts written here; each script ends with DONE_HOOK, which prints one JSON line with
 * the count, errors and latency percentiles, so nothing depends on wrk's human-readable output.
 *
 * Ids: every record the bench sends has the client id `<run>-<phase>-4000-8000-<n>` (hex), `run` unique per bench
 * run, `phase` per wrk invocation, `n` a counter in the script; the read cases compute the same ids, so they
 * know which records exist and which were never read.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureCommand, run } from '../processes.ts';
import { trackCpu } from './cost.ts';

export interface WrkOutcome {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** [percentile, ms] pairs of the latency distribution (DISTRIBUTION_PERCENTILES). */
  readonly distributionMs: ReadonlyArray<readonly [number, number]>;
  /** Non-2xx/3xx answers, socket errors and timeouts together, and by kind. */
  readonly errors: number;
  readonly errorDetail: Readonly<Record<'connect' | 'read' | 'write' | 'status' | 'timeout', number>>;
  /** CPU seconds wrk itself used. */
  readonly cpuSeconds: number;
}

/** The percentiles of the latency distribution kept for the report (wrk's histogram is an HdrHistogram). */
export const DISTRIBUTION_PERCENTILES = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100] as const;

export const DONE_HOOK = `
function done(summary, latency, requests)
  local e = summary.errors
  local dist = {}
  for _, p in ipairs({${DISTRIBUTION_PERCENTILES.join(', ')}}) do
    dist[#dist + 1] = string.format('[%s,%d]', p, p == 0 and latency.min or (p == 100 and latency.max or latency:percentile(p)))
  end
  io.write(string.format(
    '\\nBENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"dist_us":[%s]}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, table.concat(dist, ',')))
end
`;

/** The id the Lua scripts give record `k` of `phase` (for checks from the Node side). */
export const benchId = (runId: string, phase: number, k: number): string =>
  `${runId}-${phase.toString(16).padStart(4, '0')}-4000-8000-${k.toString(16).padStart(12, '0')}`;

const prelude = (runId: string) => `
local function uuid(phase, k) return string.format("%s-%04x-4000-8000-%012x", "${runId}", phase, k) end
local phase, first, count, n = 0, 0, 1, 0
function init(args)
  phase, first, count, n = tonumber(args[1]) or 0, tonumber(args[2]) or 0, tonumber(args[3]) or 1, tonumber(args[4]) or 0
end
`;

const recordJson = (source: string) =>
  `'{"id":"' .. uuid(phase, n) .. '","source":"${source}","type":"reading","payload":{"seq":' .. n .. ',"unit":"C","value":21.5}}'`;

const post = (runId: string, body: string) => `${prelude(runId)}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
${body}
end
${DONE_HOOK}`;

/** The Lua scripts; their arguments (after `--`) are phase, first, count, n. */
export const luaScripts = {
  /** The URL's request over and over. */
  static: () => DONE_HOOK,
  /** POST one record per request, ids n, n+1, … of `phase`. */
  postOne: (runId: string, source: string) =>
    post(runId, `  local body = ${recordJson(source)}\n  n = n + 1\n  return wrk.format(nil, nil, nil, body)`),
  /** POST `size` records per request as {"records":[…]}. */
  postBatch: (runId: string, source: string, size: number) =>
    post(
      runId,
      `  local parts = {}
  for i = 1, ${size} do parts[i] = ${recordJson(source)}; n = n + 1 end
  return wrk.format(nil, nil, nil, '{"records":[' .. table.concat(parts, ",") .. ']}')`,
    ),
  /** GET /data/<id> of records first + (n mod count) for n = n, n+1, …: each id once until they run out. */
  getIds: (runId: string) => `${prelude(runId)}
request = function()
  local k = first + n % count
  n = n + 1
  return wrk.format("GET", "/data/" .. uuid(phase, k))
end
${DONE_HOOK}`,
  /** GET /data/<id> cycling over records first…first+count-1, requests built once (wrk's CPU as for a static URL). */
  getCycle: (runId: string) => `${prelude(runId)}
local prepared, i, parse = {}, 0, init
function init(args)
  parse(args)
  for k = 0, count - 1 do prepared[k] = wrk.format("GET", "/data/" .. uuid(phase, first + k)) end
end
request = function()
  i = (i + 1) % count
  return prepared[i]
end
${DONE_HOOK}`,
};

/**
 * The records a measured write run certainly created: wrk calls `request()` once per thread before it sends
 * anything (so the first request's ids are never sent), and up to one request per connection may still be in
 * flight when it stops (so the last `connections` requests are left out).
 */
export const writtenRange = (o: WrkOutcome, connections: number, perRequest = 1): { first: number; count: number } => ({
  first: perRequest,
  count: Math.max(0, o.requests - o.errors - connections) * perRequest,
});

export interface WrkOptions {
  readonly url: string;
  /** Lua source, ending with DONE_HOOK. */
  readonly script: string;
  readonly args?: readonly (string | number)[];
  readonly connections: number;
  readonly threads?: number;
  readonly seconds: number;
  readonly timeoutS?: number;
  /** Where the script file goes. */
  readonly dir: string;
  readonly name: string;
  /** Sent with every request (wrk -H), e.g. the bearer token. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** One wrk run; its own CPU is sampled from /proc while it runs. */
export async function wrk(options: WrkOptions): Promise<WrkOutcome> {
  const script = join(options.dir, `${options.name}.lua`);
  writeFileSync(script, options.script);
  const cpu = trackCpu();
  const threads = options.threads ?? 1;
  const result = await run(
    ensureCommand('wrk', 'wrk'),
    [
      `-t${threads}`,
      `-c${Math.max(threads, options.connections)}`,
      `-d${options.seconds}s`,
      '--timeout',
      `${options.timeoutS ?? 5}s`,
      ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
      '-s',
      script,
      options.url,
      '--',
      ...(options.args ?? []).map(String),
    ],
    { timeoutMs: (options.seconds + 30) * 1000, onSpawn: cpu.onSpawn },
  );
  const json = /BENCH_JSON (\{.*\})/.exec(result.stdout)?.[1];
  if (result.exitCode !== 0 || json === undefined) {
    throw new Error(`wrk ${options.name} failed (${result.exitCode}):\n${result.stdout}${result.stderr}`);
  }
  const parsed = JSON.parse(json) as Record<string, number> & { dist_us?: Array<[number, number]> };
  const r: Record<string, number> = parsed;
  const ms = (key: string) => (r[key] ?? 0) / 1000;
  const seconds = ms('duration_us') / 1000;
  const requests = r.requests ?? 0;
  const errorDetail = {
    connect: r.connect ?? 0,
    read: r.read ?? 0,
    write: r.write ?? 0,
    status: r.status ?? 0,
    timeout: r.timeout ?? 0,
  };
  return {
    requests,
    seconds,
    rps: seconds > 0 ? requests / seconds : 0,
    p50Ms: ms('p50_us'),
    p90Ms: ms('p90_us'),
    p99Ms: ms('p99_us'),
    maxMs: ms('max_us'),
    distributionMs: (parsed.dist_us ?? []).map(([p, us]) => [p, us / 1000] as const),
    errors: Object.values(errorDetail).reduce((a, b) => a + b, 0),
    errorDetail,
    cpuSeconds: cpu.seconds(),
  };
}
