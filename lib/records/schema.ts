/**
 * The contract shapes of records, declared once in joi: what a client sends (one record or a batch), what the
 * service answers (a record, an ingest result, a page) and the list query. The OpenAPI document and the event
 * schema are generated from these (lib/api); the TypeScript types in types.ts mirror them and a test holds the
 * two together. Rules JSON Schema cannot say (real calendar dates, the accepted time window, payload depth and
 * bytes, characters PostgreSQL refuses) are checked by one walk over the body beside joi.
 */
import Joi from 'joi';
import { type FieldIssue, InvalidParameterError, toPointer, ValidationError } from '#lib/errors';
import { isUuid, uuidv7 } from './ids.ts';
import type { Clock } from './ports.ts';
import { normalizeRfc3339, parseRfc3339, RFC3339_PATTERN, readRfc3339 } from './timestamp.ts';
import type { JsonObject, KeysetPosition, ListFilter, NewRecord } from './types.ts';

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
export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;

/**
 * What a record field's pattern means, said in its 400 by `describeJoiDetail`. Named patterns rather than joi's
 * `.messages()`: those are preferences, and joi merges a field's preferences (compiling its messages) each time it
 * validates that field: three times per record, 7 % of a 100-record POST's CPU (npm run bench:profile).
 */
const PATTERN_RULES: Readonly<Record<string, string>> = {
  name: 'must contain only letters, digits and . _ : / -',
  uuid: 'must be a UUID',
  'date-time': 'must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z',
};
const name = () => Joi.string().min(1).max(NAME_MAX_LENGTH).pattern(NAME_PATTERN, { name: 'name' });
const uuid = () => Joi.string().pattern(UUID_PATTERN, { name: 'uuid' }).meta({ format: 'uuid' });
const utcDateTime = (description: string) =>
  Joi.string().required().meta({ format: 'date-time' }).description(description);

/** The joi schemas of what a client sends, for one set of limits (their descriptions state the limits). */
export function recordSchemas(limits: RecordSchemaLimits): {
  recordInput: Joi.ObjectSchema;
  batchInput: Joi.ObjectSchema;
} {
  const recordInput = Joi.object({
    id: uuid().description('Optional. A client-supplied id makes retries idempotent: a stored id answers `duplicate`.'),
    source: name().required().description('Producer of the record.'),
    type: name().required().description('Kind of record.'),
    timestamp: Joi.string()
      .pattern(RFC3339_PATTERN, { name: 'date-time' })
      .meta({ format: 'date-time' })
      .description(
        `RFC 3339 with an offset; defaults to the receipt time. At most ${limits.maxPastMs / 86_400_000} days in the past and ${limits.maxFutureMs / 3_600_000} hours in the future.`,
      ),
    payload: Joi.object()
      .unknown(true)
      .required()
      .description(
        `Any JSON object up to ${limits.payloadMaxBytes} bytes and ${limits.payloadMaxDepth} levels deep. No NUL characters, unpaired surrogates, or the keys __proto__, constructor, prototype.`,
      ),
  })
    .unknown(false)
    .id('RecordInput');
  const batchInput = Joi.object({
    records: Joi.array().items(recordInput).min(1).max(limits.maxBatchRecords).required(),
  })
    .unknown(false)
    .id('BatchInput');
  return { recordInput, batchInput };
}

/** A record as the service answers it (GET /data/{id}, list pages, events). */
export const storedRecordSchema = Joi.object({
  id: uuid().required(),
  source: name().required(),
  type: name().required(),
  timestamp: utcDateTime('UTC, millisecond or microsecond precision.'),
  payload: Joi.object().unknown(true).required(),
  received_at: utcDateTime('When the service committed it (UTC).'),
})
  .unknown(false)
  .id('Record');

/** What a successful POST answers; a repeated Idempotency-Key answers the same again. */
export const ingestResultSchema = Joi.object({
  records: Joi.array()
    .items(Joi.object({ id: uuid().required(), status: Joi.string().valid('created', 'duplicate').required() }))
    .required(),
}).id('IngestResult');

/** One page of a list. */
export const recordPageSchema = Joi.object({
  records: Joi.array().items(storedRecordSchema).required(),
  next_cursor: Joi.string().allow(null).required().description('Pass as `cursor` for the next page; null on the last.'),
}).id('RecordPage');

// Query parameters arrive as text: a decimal integer is digits only (no sign, exponent, spaces or hex).
const query = Joi.extend((joi) => ({
  type: 'decimalInteger',
  base: joi.number().integer(),
  prepare: (value: unknown, helpers: Joi.CustomHelpers) =>
    typeof value === 'string' && !/^\d{1,7}$/.test(value) ? { errors: [helpers.error('number.base')] } : { value },
})) as typeof Joi & { decimalInteger(): Joi.NumberSchema };

const INSTANT_RULE = 'must be an RFC 3339 date-time with an offset in years 0001–9999, e.g. 2026-01-31T12:00:00Z';
const instant = (description: string) =>
  Joi.string()
    .custom((value: string, helpers) => normalizeRfc3339(value) ?? helpers.error('any.invalid'))
    .messages({ '*': INSTANT_RULE })
    .meta({ format: 'date-time' })
    .description(description);
const nameParameter = (description: string) =>
  Joi.string()
    .max(NAME_MAX_LENGTH)
    .pattern(NAME_PATTERN)
    .messages({ '*': `must be 1–${NAME_MAX_LENGTH} characters of letters, digits and . _ : / -` })
    .description(description);

// The filters list pages and exports share: one declaration, one parse (`parseFilter`).
const filterParameters = {
  source: nameParameter('Only records of this source.'),
  type: nameParameter('Only records of this type.'),
  from: instant('Inclusive lower bound on timestamp (RFC 3339).'),
  to: instant('Exclusive upper bound on timestamp (RFC 3339).'),
};

/** The query parameters of `GET /data`. */
export const listQuerySchema = Joi.object({
  ...filterParameters,
  limit: query
    .decimalInteger()
    .min(1)
    .max(MAX_PAGE_LIMIT)
    .messages({ '*': `must be an integer from 1 to ${MAX_PAGE_LIMIT}` })
    .description(`Page size, default ${DEFAULT_PAGE_LIMIT}.`)
    .meta({ default: DEFAULT_PAGE_LIMIT }),
  cursor: Joi.string().max(512).description('The next_cursor of the previous page, with the same filters.'),
})
  .unknown(false)
  .messages({ 'object.unknown': 'is not a known query parameter' });

const AFTER_RULE =
  'must be the timestamp and the id of a record joined by a comma, e.g. 2026-01-31T12:00:00.123Z,<uuid>';

/** The query parameters of `GET /data/export`. */
export const exportQuerySchema = Joi.object({
  ...filterParameters,
  after: Joi.string()
    .max(128)
    .custom((value: string, helpers) => {
      const comma = value.lastIndexOf(',');
      const timestamp = comma < 0 ? undefined : normalizeRfc3339(value.slice(0, comma));
      const id = value.slice(comma + 1);
      return timestamp === undefined || !isUuid(id) ? helpers.error('any.invalid') : `${timestamp},${id.toLowerCase()}`;
    })
    .messages({ '*': AFTER_RULE })
    .description(
      'Resume: `<timestamp>,<id>` of the last record received (both as the record has them); the export goes on strictly after it.',
    ),
})
  .unknown(false)
  .messages({ 'object.unknown': 'is not a known query parameter' });

/** Visible ASCII, as Stripe and the IETF httpapi draft use; long enough for a UUID or a content hash. */
export const idempotencyKeySchema = Joi.string()
  .pattern(/^[\x21-\x7E]+$/)
  .max(255)
  .messages({ '*': 'must be 1–255 visible ASCII characters' })
  .description(
    'Same key and same body → the first response again; same key and another body → 422; while the first is in flight → 409.',
  );

// Compiled options: fixed once, never rebuilt per call.
const JOI_OPTIONS: Joi.ValidationOptions = { abortEarly: false, convert: false, errors: { wrap: { label: false } } };
const QUERY_OPTIONS: Joi.ValidationOptions = { abortEarly: false, convert: true, errors: { wrap: { label: false } } };
const MAX_ISSUES = 100;
const listQueryValidator = listQuerySchema.prefs(QUERY_OPTIONS);
const exportQueryValidator = exportQuerySchema.prefs(QUERY_OPTIONS);

/** Joi issues as field issues with JSON pointers; `asDeclared` keeps the schema's own messages. */
const issuesOf = (error: Joi.ValidationError | undefined, asDeclared = false): FieldIssue[] =>
  (error?.details ?? []).map((detail) => ({
    pointer: toPointer(detail.path),
    detail: asDeclared ? detail.message : describeJoiDetail(detail),
  }));

export interface RecordValidator {
  /** Validates a parsed POST body and returns the records to store, or throws a `ValidationError`. */
  validateIngestBody(body: unknown): NewRecord[];
}

/** Builds the validator for a set of limits; `clock` decides the accepted timestamp window. */
export function createRecordValidator(limits: RecordSchemaLimits, clock: Clock = Date.now): RecordValidator {
  // Preferences applied to the schemas once: passed to validate() they would be merged again on every call.
  const schemas = recordSchemas(limits);
  const recordInput = schemas.recordInput.prefs(JOI_OPTIONS);
  const batchInput = schemas.batchInput.prefs(JOI_OPTIONS);

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
      const inspected = inspectRecordBody(body, isBatch, limits, now);
      const issues = inspected.issues;
      issues.push(...issuesOf((isBatch ? batchInput : recordInput).validate(body).error));
      const inputs = isBatch ? (body.records as unknown[]) : [body];
      if (issues.length === 0) issues.push(...findDuplicateIds(inputs, isBatch));
      if (issues.length > 0) throw new ValidationError(uniqueByPointer(issues).slice(0, MAX_ISSUES));
      const receivedAt = new Date(now).toISOString();
      return inputs.map((input, index) =>
        toNewRecord(
          input as RecordInput,
          inspected.payloadJson[index] ?? '{}',
          inspected.timestamps[index],
          receivedAt,
          now,
        ),
      );
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

function toNewRecord(
  input: RecordInput,
  payloadJson: string,
  utcTimestamp: string | undefined,
  receivedAt: string,
  now: number,
): NewRecord {
  return {
    id: input.id === undefined ? uuidv7(now) : input.id.toLowerCase(),
    source: input.source,
    type: input.type,
    // Rendered in UTC by the inspection (what PostgreSQL accepts for every offset); validated, so it is there.
    timestamp: input.timestamp === undefined ? receivedAt : (utcTimestamp ?? input.timestamp),
    payload: input.payload,
    payloadJson,
    idGiven: input.id !== undefined,
    timestampGiven: input.timestamp !== undefined,
  };
}

/** Validates `GET /data` parameters with `listQuerySchema`, reporting every bad one at once. */
export function parseListParameters(parameters: Readonly<Record<string, string | undefined>>): {
  filter: ListFilter;
  limit: number;
  cursor: string | undefined;
} {
  const { value, error } = listQueryValidator.validate(parameters);
  const parsed = value as FilterValues & { limit?: number; cursor?: string };
  return {
    filter: parseFilter(parsed, issuesOf(error, true)),
    limit: parsed.limit ?? DEFAULT_PAGE_LIMIT,
    cursor: parsed.cursor,
  };
}

/** Validates `GET /data/export` parameters with `exportQuerySchema`, reporting every bad one at once. */
export function parseExportParameters(parameters: Readonly<Record<string, string | undefined>>): {
  filter: ListFilter;
  after: KeysetPosition | undefined;
} {
  const { value, error } = exportQueryValidator.validate(parameters);
  const parsed = value as FilterValues & { after?: string };
  const filter = parseFilter(parsed, issuesOf(error, true));
  // Validated above: the text is `<UTC timestamp>,<lower-case uuid>`.
  const comma = parsed.after?.lastIndexOf(',') ?? -1;
  const after =
    parsed.after === undefined
      ? undefined
      : { timestamp: parsed.after.slice(0, comma), id: parsed.after.slice(comma + 1) };
  return { filter, after };
}

type FilterValues = { source?: string; type?: string; from?: string; to?: string };

/** The filter of validated parameters; throws every issue of the parameters at once (joi's and `from` > `to`). */
function parseFilter(parsed: FilterValues, issues: FieldIssue[]): ListFilter {
  const { from, to } = parsed;
  const valid = (pointer: string) => !issues.some((issue) => issue.pointer === pointer);
  if (
    from !== undefined &&
    to !== undefined &&
    valid('/from') &&
    valid('/to') &&
    (parseRfc3339(from) ?? 0) > (parseRfc3339(to) ?? 0)
  ) {
    issues.push({ pointer: '/from', detail: 'must not be after to' });
  }
  if (issues.length > 0) throw new InvalidParameterError(issues);
  return {
    ...(parsed.source !== undefined && { source: parsed.source }),
    ...(parsed.type !== undefined && { type: parsed.type }),
    ...(from !== undefined && { from }),
    ...(to !== undefined && { to }),
  };
}

/**
 * Checks what joi cannot, in one iterative walk per record (a hostile nesting depth cannot overflow the stack):
 * calendar-valid timestamps inside the window, payload depth, reserved keys, NUL and lone surrogates, numbers
 * JSON cannot carry; then each payload is serialised once, to measure it and to be stored as that very text, and
 * each timestamp is rendered in UTC once, to be stored as that text. JSON pointers are built only for issues.
 */
export function inspectRecordBody(
  body: Record<string, unknown>,
  isBatch: boolean,
  limits: RecordSchemaLimits,
  now: number,
): { issues: FieldIssue[]; payloadJson: string[]; timestamps: Array<string | undefined> } {
  const issues: FieldIssue[] = [];
  const payloadJson: string[] = [];
  const timestamps: Array<string | undefined> = [];
  const records = isBatch ? body.records : [body];
  if (isBatch) {
    // The envelope's own keys and strings (a batch has only `records`; joi reports the rest).
    for (const key of Object.keys(body)) {
      if (RESERVED_KEYS.has(key)) issues.push({ pointer: toPointer([key]), detail: `uses the reserved key "${key}"` });
    }
  }
  if (!Array.isArray(records)) return { issues, payloadJson, timestamps };
  records.forEach((record: unknown, index) => {
    if (!isPlainObject(record)) return;
    const base = isBatch ? ['records', index] : [];
    walk(record, base, limits.payloadMaxDepth, issues);
    const { timestamp, payload } = record;
    if (typeof timestamp === 'string' && RFC3339_PATTERN.test(timestamp)) {
      const read = readRfc3339(timestamp);
      const at = read?.utc === undefined ? undefined : read.ms;
      const pointer = () => toPointer([...base, 'timestamp']);
      if (at === undefined)
        issues.push({ pointer: pointer(), detail: 'is not a real date and time in years 0001–9999' });
      else if (at < now - limits.maxPastMs)
        issues.push({ pointer: pointer(), detail: `is more than ${formatSpan(limits.maxPastMs)} in the past` });
      else if (at > now + limits.maxFutureMs)
        issues.push({ pointer: pointer(), detail: `is more than ${formatSpan(limits.maxFutureMs)} in the future` });
      timestamps[index] = read?.utc;
    }
    if (!isPlainObject(payload)) return;
    if (issues.length > 0) {
      const payloadPointer = toPointer([...base, 'payload']);
      if (issues.some((issue) => issue.pointer.startsWith(payloadPointer))) return;
    }
    const json = JSON.stringify(payload);
    const bytes = Buffer.byteLength(json);
    if (bytes > limits.payloadMaxBytes) {
      const pointer = toPointer([...base, 'payload']);
      issues.push({ pointer, detail: `is ${bytes} bytes as JSON; the limit is ${limits.payloadMaxBytes}` });
    }
    payloadJson[index] = json;
  });
  return { issues, payloadJson, timestamps };
}

/**
 * One breadth-first walk of a record: reserved keys, NUL, lone surrogates, non-finite numbers anywhere, and the
 * payload's nesting depth (the payload object itself is level 1). Each node keeps its parent and key, not its
 * path: a path (and its pointer) is built only for a node with an issue.
 */
function walk(record: object, base: (string | number)[], maxDepth: number, issues: FieldIssue[]): void {
  const values: unknown[] = [record];
  const parents: number[] = [-1];
  const keys: Array<string | number> = [''];
  const levels: number[] = [0];
  const pathOf = (node: number): (string | number)[] => {
    const tail: Array<string | number> = [];
    for (let at = node; at > 0; at = parents[at] as number) tail.push(keys[at] as string | number);
    return [...base, ...tail.reverse()];
  };
  let tooDeep = false;
  // An index instead of shift(): a megabyte of small array items would make shift() quadratic.
  for (let i = 0; i < values.length && issues.length < MAX_ISSUES; i++) {
    const value = values[i];
    const level = levels[i] as number;
    if (typeof value === 'string') {
      const problem = badText(value);
      if (problem) issues.push({ pointer: toPointer(pathOf(i)), detail: problem });
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) issues.push({ pointer: toPointer(pathOf(i)), detail: 'is a number out of range' });
    } else if (value !== null && typeof value === 'object') {
      if (level > maxDepth) {
        // Deeper than any valid record goes: outside the payload joi refuses the shape anyway, and the walk
        // stops here either way, so a hostile nesting costs nothing.
        const path = pathOf(i);
        const inPayload = path.length > base.length && path[base.length] === 'payload';
        if (inPayload && !tooDeep)
          issues.push({ pointer: toPointer([...base, 'payload']), detail: `nests deeper than ${maxDepth} levels` });
        tooDeep ||= inPayload;
        continue;
      }
      const entries = Array.isArray(value) ? value.entries() : Object.entries(value);
      for (const [key, child] of entries) {
        if (typeof key === 'string') {
          if (RESERVED_KEYS.has(key)) {
            issues.push({ pointer: toPointer([...pathOf(i), key]), detail: `uses the reserved key "${key}"` });
            continue;
          }
          const problem = badText(key);
          if (problem) issues.push({ pointer: toPointer([...pathOf(i), key]), detail: `has a key that ${problem}` });
        }
        values.push(child);
        parents.push(i);
        keys.push(key);
        levels.push(level + 1);
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
    case 'string.pattern.name':
      return PATTERN_RULES[String(ctx.name)] ?? detail.message;
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
