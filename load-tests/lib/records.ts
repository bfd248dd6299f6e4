/**
 * Record generators: valid bodies for `POST /data` by the rules of lib/records/schema.ts (names of
 * `[A-Za-z0-9._:/-]`, RFC 3339 timestamps with an offset inside the accepted window, a JSON-object payload of a
 * chosen size), each with a client-supplied UUID so a retried or replayed request is idempotent. Deterministic for
 * a given `Rng` and `now`. k6-independent: plain ES2020.
 */
import type { Rng } from './prng.ts';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** One record as a client sends it. */
export interface RecordBody {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly timestamp: string;
  readonly payload: JsonObject;
}

export interface BatchBody {
  readonly records: readonly RecordBody[];
}

export interface RecordOptions {
  /** Epoch milliseconds the timestamps are drawn back from (the run's start). */
  readonly now: number;
  /** Names this run's sources, so its records never mix with another run's in list queries. */
  readonly runTag: string;
  /** How many distinct sources the run writes to. */
  readonly sources: number;
  /** Approximate payload size as JSON, in bytes (the service's default limit is 65536). */
  readonly payloadBytes: number;
  /** How far back timestamps reach; well inside the service's RECORD_MAX_PAST_DAYS (default 7 days). */
  readonly maxAgeMs: number;
}

export const DEFAULT_RECORD_OPTIONS: Omit<RecordOptions, 'now' | 'runTag'> = {
  sources: 16,
  payloadBytes: 256,
  maxAgeMs: 60 * 60 * 1000,
};

/** Types a telemetry client might send; they use every punctuation character the schema allows. */
export const RECORD_TYPES: readonly string[] = ['temperature', 'humidity', 'pressure', 'door/open', 'meter:kwh_v2.1'];

/** UTC offsets (minutes) the generated timestamps use, so the service's offset normalisation is exercised. */
const OFFSETS_MINUTES: readonly number[] = [0, 0, 0, 60, 330, -300, -570, 840];

/** A short tag for a run, safe in source names and request ids: `r` and the seed in base 36. */
export const runTagOf = (seed: number): string => `r${(seed >>> 0).toString(36)}`;

/** The name of source number `index` of a run. */
export const sourceName = (runTag: string, index: number): string =>
  `load.${runTag}.s${String(index).padStart(2, '0')}`;

/** All source names of a run. */
export const sourceNames = (options: Pick<RecordOptions, 'runTag' | 'sources'>): string[] =>
  Array.from({ length: options.sources }, (_, index) => sourceName(options.runTag, index));

/**
 * `ms` as RFC 3339 at a UTC offset of `offsetMinutes`, with milliseconds (what PostgreSQL's timestamptz keeps
 * exactly): `2026-11-26T15:20:01.123+05:30`. The same instant as `new Date(ms).toISOString()`.
 */
export function formatTimestamp(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  if (offsetMinutes === 0) return `${local}Z`;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${local}${sign}${hh}:${mm}`;
}

/** One valid record with a fresh client id. */
export function generateRecord(rng: Rng, options: RecordOptions): RecordBody {
  const type = rng.pick(RECORD_TYPES);
  const at = options.now - rng.int(0, Math.max(0, Math.floor(options.maxAgeMs)));
  return {
    id: rng.uuid(),
    source: sourceName(options.runTag, rng.int(0, Math.max(0, options.sources - 1))),
    type,
    timestamp: formatTimestamp(at, rng.pick(OFFSETS_MINUTES)),
    payload: generatePayload(rng, type, options.payloadBytes),
  };
}

/** `count` valid records with distinct client ids, as a batch body. */
export function generateBatch(rng: Rng, count: number, options: RecordOptions): BatchBody {
  return { records: Array.from({ length: count }, () => generateRecord(rng, options)) };
}

/**
 * A payload shaped like telemetry (numbers, a flag, a small array, a nested object, non-ASCII text), padded with
 * a `note` to about `bytes` bytes of JSON.
 */
export function generatePayload(rng: Rng, type: string, bytes: number): JsonObject {
  const payload: JsonObject = {
    value: Math.round(rng.next() * 100_000) / 100,
    unit: UNITS[type] ?? 'count',
    ok: rng.chance(0.95),
    seq: rng.int(0, 2_147_483_647),
    tags: [rng.pick(TAGS), rng.pick(TAGS)],
    device: { model: rng.pick(MODELS), firmware: `${rng.int(1, 9)}.${rng.int(0, 20)}.${rng.int(0, 99)}` },
    label: rng.pick(LABELS),
  };
  const size = utf8Length(JSON.stringify(payload));
  const padding = bytes - size - ',"note":""'.length;
  if (padding > 0) payload.note = pad(rng, padding);
  return payload;
}

const UNITS: Readonly<Record<string, string>> = {
  temperature: '°C',
  humidity: '%',
  pressure: 'hPa',
  'meter:kwh_v2.1': 'kWh',
};
const TAGS: readonly string[] = ['north', 'south', 'roof', 'basement', 'lab', 'line-3', 'batch:7'];
const MODELS: readonly string[] = ['TX-100', 'TX-200', 'Aqara/T1', 'esp32.c3'];
const LABELS: readonly string[] = ['Salle de réunion', 'Kühlraum 2', 'Sala №5', '会议室', 'Main hall'];
const PAD_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789 ';

function pad(rng: Rng, length: number): string {
  // A random prefix keeps payloads from compressing to nothing; the rest repeats it (cheap to build at 64 KiB).
  const seed = Array.from({ length: Math.min(length, 64) }, () => rng.pick(PAD_ALPHABET.split(''))).join('');
  return seed.repeat(Math.ceil(length / seed.length)).slice(0, length);
}

/** Bytes of `text` in UTF-8, without TextEncoder or Buffer (neither exists in both k6 and Node's typings here). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
