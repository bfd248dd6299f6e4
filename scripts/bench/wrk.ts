/**
 * wrk (Debian's package) as the HTTP load generator: closed loop, one thread, a fixed number of connections.
 * Requests come from small Lua scripts written here; every script ends with a `done()` hook that prints one
 * JSON line with the count, errors and latency percentiles, so nothing depends on wrk's human-readable output.
 *
 * Ids: every record the bench sends has a client id `<run>-<phase>-4000-8000-<n>` (hex), where `run` is unique
 * per bench run, `phase` per wrk invocation and `n` a counter in the script. The read cases compute the same
 * ids, so they know which records exist and which were never read before.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTimed } from './proc.ts';

export interface WrkOutcome {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Non-2xx/3xx answers, socket errors and timeouts together. */
  readonly errors: number;
  readonly errorDetail: Readonly<Record<string, number>>;
  /** User + system CPU seconds wrk used. */
  readonly cpuSeconds: number;
}

const DONE_HOOK = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
`;

const uuidFn = (runId: string) => `
local run_id = "${runId}"
local function uuid(phase, k)
  return string.format("%s-%04x-4000-8000-%012x", run_id, phase, k)
end
`;

/** The id the Lua scripts give record `k` of `phase` (for checks from the Node side). */
export function benchId(runId: string, phase: number, k: number): string {
  return `${runId}-${phase.toString(16).padStart(4, '0')}-4000-8000-${k.toString(16).padStart(12, '0')}`;
}

const recordJson = (source: string) =>
  `'{"id":"' .. uuid(phase, n) .. '","source":"${source}","type":"reading","payload":{"seq":' .. n .. ',"unit":"C","value":21.5}}'`;

/** The Lua scripts, by kind. Arguments after `--` are read in `init`. */
export const luaScripts = {
  /** A fixed request (the URL's path): only the reporting hook. */
  static: () => DONE_HOOK,

  /** POST one record per request. Args: phase, first n. */
  postOne: (runId: string, source: string) => `${uuidFn(runId)}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local phase, n = 0, 0
function init(args)
  phase = tonumber(args[1]) or 0
  n = tonumber(args[2]) or 0
end
request = function()
  local body = ${recordJson(source)}
  n = n + 1
  return wrk.format(nil, nil, nil, body)
end
${DONE_HOOK}`,

  /** POST `size` records per request as {"records":[…]}. Args: phase, first n. */
  postBatch: (runId: string, source: string, size: number) => `${uuidFn(runId)}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local phase, n = 0, 0
function init(args)
  phase = tonumber(args[1]) or 0
  n = tonumber(args[2]) or 0
end
request = function()
  local parts = {}
  for i = 1, ${size} do
    parts[i] = ${recordJson(source)}
    n = n + 1
  end
  return wrk.format(nil, nil, nil, '{"records":[' .. table.concat(parts, ",") .. ']}')
end
${DONE_HOOK}`,

  /**
   * GET /data/<id> of records first+(n mod count) for n = start, start+1, …: each id once until they run out.
   * Args: phase, first, count, start.
   */
  getSequential: (runId: string) => `${uuidFn(runId)}
local phase, first, count, n = 0, 0, 1, 0
function init(args)
  phase = tonumber(args[1]) or 0
  first = tonumber(args[2]) or 0
  count = tonumber(args[3]) or 1
  n = tonumber(args[4]) or 0
end
request = function()
  local k = first + n % count
  n = n + 1
  return wrk.format("GET", "/data/" .. uuid(phase, k))
end
${DONE_HOOK}`,

  /** GET /data/<id> cycling over records first…first+count-1 of `phase`, requests built once. Args: phase, first, count. */
  getCycle: (runId: string) => `${uuidFn(runId)}
local prepared, i, count = {}, 0, 1
function init(args)
  local phase = tonumber(args[1]) or 0
  local first = tonumber(args[2]) or 0
  count = tonumber(args[3]) or 1
  for k = 0, count - 1 do
    prepared[k] = wrk.format("GET", "/data/" .. uuid(phase, first + k))
  end
end
request = function()
  i = (i + 1) % count
  return prepared[i]
end
${DONE_HOOK}`,
};

/**
 * The records a measured write run certainly created: wrk calls `request()` once per thread before the first
 * request it sends (so the first request's ids are never sent), and up to one request per connection may still
 * be in flight when it stops (so the last `connections` requests are left out).
 */
export function writtenRange(
  outcome: WrkOutcome,
  connections: number,
  recordsPerRequest = 1,
): { first: number; count: number } {
  return {
    first: recordsPerRequest,
    count: Math.max(0, outcome.requests - outcome.errors - connections) * recordsPerRequest,
  };
}

export interface WrkOptions {
  readonly url: string;
  /** Lua source. */
  readonly script: string;
  readonly args?: readonly (string | number)[];
  readonly connections: number;
  readonly seconds: number;
  /** Where the script file is written. */
  readonly dir: string;
  readonly name: string;
}

/** Runs wrk with one thread; its CPU time is taken from the shell's `times` after it exits. */
export async function wrk(options: WrkOptions): Promise<WrkOutcome> {
  const scriptPath = join(options.dir, `${options.name}.lua`);
  writeFileSync(scriptPath, options.script);
  const wrkArgs = [
    '-t1',
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--timeout',
    '5s',
    '-s',
    scriptPath,
    options.url,
    '--',
    ...(options.args ?? []).map(String),
  ];
  const result = await runTimed('wrk', wrkArgs, { timeoutMs: (options.seconds + 30) * 1000 });
  const json = /BENCH_JSON (\{.*\})/.exec(result.stdout)?.[1];
  if (result.code !== 0 || json === undefined) {
    throw new Error(`wrk ${options.name} failed (${result.code}):\n${result.stdout}${result.stderr}`);
  }
  const r = JSON.parse(json) as Record<string, number>;
  const cpuSeconds = result.cpuSeconds;
  const seconds = (r.duration_us ?? 0) / 1e6;
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
    p50Ms: (r.p50_us ?? 0) / 1000,
    p90Ms: (r.p90_us ?? 0) / 1000,
    p99Ms: (r.p99_us ?? 0) / 1000,
    maxMs: (r.max_us ?? 0) / 1000,
    meanMs: (r.mean_us ?? 0) / 1000,
    errors: Object.values(errorDetail).reduce((a, b) => a + b, 0),
    errorDetail,
    cpuSeconds,
  };
}
