/**
 * Settings of a load run from environment variables (k6's `__ENV`, or `process.env` for the local runner), parsed
 * once: every malformed variable is named in one error, nothing falls back silently. k6-independent.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export interface LoadSettings {
  /** BASE_URL: where both functions answer (the public route; POST goes to ingest, GET to query). */
  readonly baseUrl: string;
  /** INGEST_URL / QUERY_URL: each function's own route when they do not share one (default BASE_URL). */
  readonly ingestUrl: string;
  readonly queryUrl: string;
  /** TARGET_RPS: requests per second (the peak, for ramping scenarios). */
  readonly targetRps: number;
  /** DURATION: how long the main phase lasts, seconds (`30s`, `5m`, `1h30m` or a plain number of seconds). */
  readonly durationS: number;
  /** RAMP: ramp-up and ramp-down time of `load` and `spike`, seconds. */
  readonly rampS: number;
  /** READ_RATIO: share of requests that read, 0–1. */
  readonly readRatio: number;
  /** BATCH_SIZE: records per write (1 = single-record body). */
  readonly batchSize: number;
  /** VUS: VUs k6 pre-allocates (arrival-rate executors) or runs (smoke). */
  readonly vus: number;
  /** MAX_VUS: the most VUs an arrival-rate executor may grow to. */
  readonly maxVus: number;
  /** SEED: names the request stream; the same seed sends the same records. Default: the start time. */
  readonly seed: number;
  /** PREFILL: records written in setup so that reads find something. */
  readonly prefill: number;
  /** SOURCES: distinct sources the run writes to and lists. */
  readonly sources: number;
  /** PAYLOAD_BYTES: approximate payload size of generated records. */
  readonly payloadBytes: number;
  /** ITERATIONS: passes of the smoke plan. */
  readonly iterations: number;
  /** TIMEOUT: per-request timeout, seconds. */
  readonly timeoutS: number;
  /** TOKEN: the bearer token every request carries (`npm run token -- --write '*' --read '*'`); none if unset. */
  readonly token: string | undefined;
}

export type SettingsDefaults = Omit<LoadSettings, 'baseUrl' | 'ingestUrl' | 'queryUrl' | 'seed' | 'token'>;

/** Defaults shared by every scenario; each scenario overrides some (see scenarios.ts). */
export const BASE_DEFAULTS: SettingsDefaults = {
  targetRps: 100,
  durationS: 60,
  rampS: 30,
  readRatio: 0.9,
  batchSize: 1,
  vus: 50,
  maxVus: 500,
  prefill: 1000,
  sources: 16,
  payloadBytes: 256,
  iterations: 1,
  timeoutS: 10,
};

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';

export class SettingsError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid load-test settings:\n  ${problems.join('\n  ')}`);
    this.name = 'SettingsError';
    this.problems = problems;
  }
}

const URL_PATTERN = /^https?:\/\/[^\s/?#@]+(\/[^\s?#]*)?$/;

/** Reads every setting from `env`, defaults from `defaults`; throws one `SettingsError` naming every bad variable. */
export function parseSettings(env: Env, defaults: SettingsDefaults, now: number = Date.now()): LoadSettings {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const url = (name: string, fallback: string): string => {
    const value = read(name);
    if (value === undefined) return fallback;
    if (!URL_PATTERN.test(value)) {
      problems.push(
        `${name}=${value}: must be an http(s) URL like http://127.0.0.1:8080, without query or credentials`,
      );
    }
    return value.replace(/\/+$/, '');
  };
  const number = (name: string, fallback: number, min: number, max: number, integer = true): number => {
    const text = read(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      problems.push(`${name}=${text}: must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };
  const duration = (name: string, fallback: number, max: number): number => {
    const text = read(name);
    if (text === undefined) return fallback;
    const seconds = parseDuration(text);
    if (seconds === undefined || seconds < 1 || seconds > max) {
      problems.push(`${name}=${text}: must be a duration from 1s to ${formatDuration(max)}, like 30s, 5m or 1h30m`);
      return fallback;
    }
    return seconds;
  };

  const baseUrl = url('BASE_URL', DEFAULT_BASE_URL);
  const settings: LoadSettings = {
    baseUrl,
    ingestUrl: url('INGEST_URL', baseUrl),
    queryUrl: url('QUERY_URL', baseUrl),
    targetRps: number('TARGET_RPS', defaults.targetRps, 1, 1_000_000),
    durationS: duration('DURATION', defaults.durationS, 7 * 24 * 3600),
    rampS: duration('RAMP', defaults.rampS, 24 * 3600),
    readRatio: number('READ_RATIO', defaults.readRatio, 0, 1, false),
    batchSize: number('BATCH_SIZE', defaults.batchSize, 1, 1000),
    vus: number('VUS', defaults.vus, 1, 100_000),
    maxVus: number('MAX_VUS', defaults.maxVus, 1, 100_000),
    seed: number('SEED', now % 0x1_0000_0000, 0, 0xffff_ffff),
    prefill: number('PREFILL', defaults.prefill, 0, 1_000_000),
    sources: number('SOURCES', defaults.sources, 1, 10_000),
    payloadBytes: number('PAYLOAD_BYTES', defaults.payloadBytes, 0, 60_000),
    iterations: number('ITERATIONS', defaults.iterations, 1, 1_000_000),
    timeoutS: duration('TIMEOUT', defaults.timeoutS, 600),
    token: read('TOKEN'),
  };
  if (settings.token !== undefined && !/^[A-Za-z0-9\-._~+/]+=*$/.test(settings.token)) {
    problems.push(
      "TOKEN: must be the bare token (no \"Bearer \", no spaces), e.g. TOKEN=$(npm run -s token -- --write '*' --read '*' | tail -1)",
    );
  }
  if (settings.readRatio > 0 && settings.prefill === 0) problems.push('PREFILL=0: reads (READ_RATIO > 0) need records');
  if (read('MAX_VUS') !== undefined && settings.maxVus < settings.vus) {
    problems.push(`MAX_VUS=${settings.maxVus}: must not be below VUS=${settings.vus}`);
  }
  if (problems.length > 0) throw new SettingsError(problems);
  return { ...settings, maxVus: Math.max(settings.maxVus, settings.vus) };
}

/** Seconds in `30s`, `5m`, `1h30m`, `2h`, `1500ms` or a plain number of seconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let seconds = 0;
  for (const part of text.match(/\d+(\.\d+)?(ms|s|m|h)/g) ?? []) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(part);
    if (match === null) return undefined;
    seconds += Number(match[1]) * (unit[match[2] ?? 's'] ?? 1);
  }
  return seconds;
}

/** `90` → `1m30s`: a k6 duration string for whole seconds. */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const text = `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 ? `${s}s` : ''}`;
  return text === '' ? '0s' : text;
}
