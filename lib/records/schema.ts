/**
 * The record schema of the public API. Structure (types, lengths, charsets, required and unknown fields, batch
 * size) is a joi schema, which is also what the OpenAPI document is generated from; rules JSON Schema cannot say
 * (real calendar dates, the accepted time window, payload depth and bytes, characters PostgreSQL refuses) are
 * checked by `inspectRecordBody` beside it.
 */
import Joi from 'joi';
import { type FieldIssue, toPointer, ValidationError } from '#lib/errors';
import { isUuid, uuidv7 } from './ids.ts';
import type { Clock } from './ports.ts';
import { normalizeRfc3339, parseRfc3339, RFC3339_PATTERN } from './timestamp.ts';
import type { JsonObject, NewRecord } from './types.ts';

export interface RecordSchemaLimits {
  readonly maxBatchRecords: number;
  readonly payloadMaxBytes: number;
  readonly payloadMaxDepth: number;
  readonly maxPastMs: number;
  readonly maxFutureMs: number;
}

export const NAME_PATTERN = /^[A-Za-z0-9._:/-]+$/;
export const NAME_MAX_LENGTH = 128;
export const UUID_PATTERN = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
/** Keys that would alter an object's prototype in careless consumers; refused anywhere in a body. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const name = () =>
  Joi.string()
    .min(1)
    .max(NAME_MAX_LENGTH)
    .pattern(NAME_PATTERN)
    .messages({ 'string.pattern.base': 'must contain only letters, digits and . _ : / -' });

/** The joi schema of one record as a client sends it. */
export const recordInputSchema = Joi.object({
  id: Joi.string().pattern(UUID_PATTERN).messages({ 'string.pattern.base': 'must be a UUID' }),
  source: name().required(),
  type: name().required(),
  timestamp: Joi.string()
    .pattern(RFC3339_PATTERN)
    .messages({ 'string.pattern.base': 'must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z' }),
  payload: Joi.object().unknown(true).required(),
})
  .unknown(false)
  .label('record');

/** The joi schema of a batch body; `maxBatchRecords` comes from config. */
export const batchInputSchema = (maxBatchRecords: number) =>
  Joi.object({
    records: Joi.array().items(recordInputSchema).min(1).max(maxBatchRecords).required(),
  })
    .unknown(false)
    .label('batch');

const JOI_OPTIONS: Joi.ValidationOptions = {
  abortEarly: false,
  convert: false,
  errors: { wrap: { label: false } },
};
const MAX_ISSUES = 100;

export interface RecordValidator {
  /** Validates a parsed POST body and returns the records to store, or throws a `ValidationError`. */
  validateIngestBody(body: unknown): NewRecord[];
}

/** Builds the validator for a set of limits; `clock` decides the accepted timestamp window. */
export function createRecordValidator(limits: RecordSchemaLimits, clock: Clock = Date.now): RecordValidator {
  const batchSchema = batchInputSchema(limits.maxBatchRecords);

  return {
    validateIngestBody(body) {
      if (!isPlainObject(body)) {
        throw new ValidationError([
          { pointer: '', detail: 'must be a JSON object: one record, or {"records": [...]}' },
        ]);
      }
      const isBatch = Object.hasOwn(body, 'records');
      const now = clock();
      // Inspect first: it also guards joi against bodies it would mishandle (it silently drops `__proto__`).
      const issues = inspectRecordBody(body, isBatch, limits, now);
      const { error } = (isBatch ? batchSchema : recordInputSchema).validate(body, JOI_OPTIONS);
      for (const detail of error?.details ?? []) {
        issues.push({ pointer: toPointer(detail.path), detail: describeJoiDetail(detail) });
      }
      const inputs = isBatch ? (body.records as unknown[]) : [body];
      if (issues.length === 0) issues.push(...findDuplicateIds(inputs, isBatch));
      if (issues.length > 0) throw new ValidationError(uniqueByPointer(issues).slice(0, MAX_ISSUES));
      const receivedAt = new Date(now).toISOString();
      return inputs.map((input) => toNewRecord(input as RecordInput, receivedAt, now));
    },
  };
}

interface RecordInput {
  id?: string;
  source: string;
  type: string;
  timestamp?: string;
  payload: JsonObject;
}

function toNewRecord(input: RecordInput, receivedAt: string, now: number): NewRecord {
  return {
    id: input.id === undefined ? uuidv7(now) : input.id.toLowerCase(),
    source: input.source,
    type: input.type,
    // Validated above, so normalisation cannot fail here; UTC text is what PostgreSQL accepts for every offset.
    timestamp: input.timestamp === undefined ? receivedAt : (normalizeRfc3339(input.timestamp) ?? input.timestamp),
    payload: input.payload,
  };
}

/**
 * Checks what joi cannot: calendar-valid timestamps inside the window, payload depth and size, and characters
 * or keys that PostgreSQL or downstream consumers refuse. Iterative, so a hostile nesting depth cannot overflow
 * the stack.
 */
export function inspectRecordBody(
  body: Record<string, unknown>,
  isBatch: boolean,
  limits: RecordSchemaLimits,
  now: number,
): FieldIssue[] {
  const issues: FieldIssue[] = [];
  scanJson(body, [], limits.payloadMaxDepth + 3, issues);
  const records = isBatch ? body.records : [body];
  if (!Array.isArray(records)) return issues;
  records.forEach((record: unknown, index) => {
    if (!isPlainObject(record)) return;
    const base = isBatch ? ['records', index] : [];
    const { timestamp, payload } = record;
    if (typeof timestamp === 'string' && RFC3339_PATTERN.test(timestamp)) {
      const at = normalizeRfc3339(timestamp) === undefined ? undefined : parseRfc3339(timestamp);
      const pointer = toPointer([...base, 'timestamp']);
      if (at === undefined) issues.push({ pointer, detail: 'is not a real date and time in years 0001–9999' });
      else if (at < now - limits.maxPastMs)
        issues.push({ pointer, detail: `is more than ${formatSpan(limits.maxPastMs)} in the past` });
      else if (at > now + limits.maxFutureMs)
        issues.push({ pointer, detail: `is more than ${formatSpan(limits.maxFutureMs)} in the future` });
    }
    if (isPlainObject(payload)) {
      const pointer = toPointer([...base, 'payload']);
      const depth = measureDepth(payload, limits.payloadMaxDepth);
      if (depth > limits.payloadMaxDepth) {
        issues.push({ pointer, detail: `nests deeper than ${limits.payloadMaxDepth} levels` });
      } else {
        const bytes = Buffer.byteLength(JSON.stringify(payload));
        if (bytes > limits.payloadMaxBytes)
          issues.push({ pointer, detail: `is ${bytes} bytes as JSON; the limit is ${limits.payloadMaxBytes}` });
      }
    }
  });
  return issues;
}

/** Walks any JSON value breadth-first for reserved keys, NUL, lone surrogates and numbers JSON cannot carry. */
function scanJson(root: unknown, rootPath: (string | number)[], maxDepth: number, issues: FieldIssue[]): void {
  const queue: Array<{ value: unknown; path: (string | number)[] }> = [{ value: root, path: rootPath }];
  // An index instead of shift(): a megabyte of small array items would make shift() quadratic.
  for (let i = 0; i < queue.length && issues.length < MAX_ISSUES; i++) {
    const { value, path } = queue[i] as { value: unknown; path: (string | number)[] };
    if (typeof value === 'string') {
      const problem = badText(value);
      if (problem) issues.push({ pointer: toPointer(path), detail: problem });
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) issues.push({ pointer: toPointer(path), detail: 'is a number out of range' });
    } else if (value !== null && typeof value === 'object' && path.length < maxDepth) {
      const entries = Array.isArray(value) ? value.entries() : Object.entries(value);
      for (const [key, child] of entries) {
        const childPath = [...path, key];
        if (typeof key === 'string') {
          if (RESERVED_KEYS.has(key)) {
            issues.push({ pointer: toPointer(childPath), detail: `uses the reserved key "${key}"` });
            continue;
          }
          const problem = badText(key);
          if (problem) issues.push({ pointer: toPointer(childPath), detail: `has a key that ${problem}` });
        }
        queue.push({ value: child, path: childPath });
      }
    }
  }
}

function badText(text: string): string | undefined {
  // PostgreSQL's text and jsonb cannot hold U+0000, and a lone surrogate is not valid UTF-8.
  if (text.includes('\u0000')) return 'contains the NUL character (\\u0000)';
  if (!text.isWellFormed()) return 'contains an unpaired UTF-16 surrogate';
  return undefined;
}

/** Depth of nested objects/arrays (the payload object itself is 1); stops counting past `limit`. */
function measureDepth(root: object, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[root, 1]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [value, depth] = item;
    if (value === null || typeof value !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return deepest;
}

function findDuplicateIds(inputs: unknown[], isBatch: boolean): FieldIssue[] {
  if (!isBatch) return [];
  const seen = new Map<string, number>();
  const issues: FieldIssue[] = [];
  inputs.forEach((input, index) => {
    const id = (input as RecordInput).id?.toLowerCase();
    if (id === undefined || !isUuid(id)) return;
    const first = seen.get(id);
    if (first === undefined) seen.set(id, index);
    else issues.push({ pointer: `/records/${index}/id`, detail: `repeats the id of /records/${first}` });
  });
  return issues;
}

function describeJoiDetail(detail: Joi.ValidationErrorItem): string {
  const ctx = detail.context ?? {};
  switch (detail.type) {
    case 'any.required':
      return 'is required';
    case 'object.unknown':
      return 'is not a known field';
    case 'object.base':
      return 'must be a JSON object';
    case 'array.base':
      return 'must be an array';
    case 'string.base':
      return 'must be a string';
    case 'string.empty':
      return 'must not be empty';
    case 'string.min':
      return `must be at least ${String(ctx.limit)} characters long`;
    case 'string.max':
      return `must be at most ${String(ctx.limit)} characters long`;
    case 'array.min':
      return `must hold at least ${String(ctx.limit)} record${ctx.limit === 1 ? '' : 's'}`;
    case 'array.max':
      return `must hold at most ${String(ctx.limit)} records`;
    default:
      return detail.message;
  }
}

function uniqueByPointer(issues: FieldIssue[]): FieldIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => !seen.has(issue.pointer) && seen.add(issue.pointer));
}

function formatSpan(ms: number): string {
  const hours = ms / 3_600_000;
  return hours % 24 === 0 ? `${hours / 24} day${hours === 24 ? '' : 's'}` : `${hours} hour${hours === 1 ? '' : 's'}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
