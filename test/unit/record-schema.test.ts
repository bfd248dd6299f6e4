import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ValidationError } from '#lib/errors';
import { createRecordValidator, type NewRecord, type RecordSchemaLimits } from '#lib/records';

const NOW = Date.parse('2026-03-15T12:00:00.000Z');
const DAY = 86_400_000;
const HOUR = 3_600_000;
const LIMITS: RecordSchemaLimits = {
  maxBatchRecords: 3,
  payloadMaxBytes: 256,
  payloadMaxDepth: 4,
  maxPastMs: 7 * DAY,
  maxFutureMs: 24 * HOUR,
};
const validator = createRecordValidator(LIMITS, () => NOW);
const ID = '0190a6e4-1c2b-7d3e-8f40-123456789abc';

const record = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  source: 'sensor-1',
  type: 'reading',
  payload: { celsius: 21.5 },
  ...extra,
});

/** Runs the validator and returns its ValidationError, failing the test if it accepted the body. */
function rejectionOf(body: unknown): ValidationError {
  try {
    validator.validateIngestBody(body);
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error(`expected a ValidationError for ${JSON.stringify(body)}`);
}

const pointersOf = (body: unknown): string[] => rejectionOf(body).issues.map((issue) => issue.pointer);

/** The one pointer a body is rejected with. */
const onlyPointer = (body: unknown): string | undefined => {
  const pointers = pointersOf(body);
  expect(pointers).toHaveLength(1);
  return pointers[0];
};

describe('createRecordValidator: accepted bodies', () => {
  it('accepts one record and fills in a time-ordered id and the receipt time', () => {
    const [stored, ...rest] = validator.validateIngestBody(record());
    expect(rest).toEqual([]);
    expect(stored).toMatchObject({ source: 'sensor-1', type: 'reading', payload: { celsius: 21.5 } });
    expect(stored?.timestamp).toBe('2026-03-15T12:00:00.000Z');
    // UUIDv7: the first 48 bits are the clock's milliseconds.
    expect(stored?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(stored?.id.replace('-', '').slice(0, 12)).toBe(NOW.toString(16).padStart(12, '0'));
  });

  it('accepts a batch and keeps the order, lower-casing client ids and normalising timestamps to UTC', () => {
    const body = {
      records: [
        record({ id: ID.toUpperCase(), timestamp: '2026-03-15T13:00:00+01:00' }),
        record({ type: 'b', timestamp: '2026-03-10T00:00:00.123456789Z' }),
        record({ source: 'A.b_c:d/e-f' }),
      ],
    };
    const stored = validator.validateIngestBody(body);
    expect(stored.map((r) => [r.id.length, r.source, r.type, r.timestamp])).toEqual([
      [36, 'sensor-1', 'reading', '2026-03-15T12:00:00.000Z'],
      [36, 'sensor-1', 'b', '2026-03-10T00:00:00.123456789Z'],
      [36, 'A.b_c:d/e-f', 'reading', '2026-03-15T12:00:00.000Z'],
    ]);
    expect(stored[0]?.id).toBe(ID);
  });

  it('accepts names of exactly 1 and 128 characters and an empty payload object', () => {
    expect(validator.validateIngestBody(record({ source: 'a', type: 'x'.repeat(128), payload: {} }))).toHaveLength(1);
  });

  it('accepts timestamps exactly on both edges of the window', () => {
    const past = new Date(NOW - LIMITS.maxPastMs).toISOString();
    const future = new Date(NOW + LIMITS.maxFutureMs).toISOString();
    expect(
      validator.validateIngestBody({ records: [record({ timestamp: past }), record({ timestamp: future })] }),
    ).toHaveLength(2);
  });

  it('accepts a payload exactly at the byte and depth limits', () => {
    // {"s":"…"} is 8 bytes plus the string; "é" is two bytes in UTF-8.
    expect(validator.validateIngestBody(record({ payload: { s: 'é'.repeat(124) } }))).toHaveLength(1);
    expect(validator.validateIngestBody(record({ payload: { a: { b: [{}] } } }))).toHaveLength(1);
  });

  it('stores a timestamp as the same instant in UTC, with at least millisecond digits', () => {
    const stored = validator.validateIngestBody({
      records: [
        record({ timestamp: '2026-03-15t11:00:00z' }),
        record({ timestamp: '2026-03-15T00:30:00.5+23:59' }),
        record({ timestamp: '2026-03-14T23:00:00.123456-02:00' }),
      ],
    });
    expect(stored.map((r) => r.timestamp)).toEqual([
      '2026-03-15T11:00:00.000Z',
      '2026-03-14T00:31:00.500Z',
      '2026-03-15T01:00:00.123456Z',
    ]);
  });
});

describe('createRecordValidator: rejected bodies', () => {
  it.each([
    ['an array', []],
    ['a string', 'record'],
    ['a number', 42],
    ['null', null],
    ['true', true],
  ])('refuses a top-level body that is %s with the empty pointer', (_, body) => {
    expect(onlyPointer(body)).toBe('');
  });

  it.each([
    ['empty', ''],
    ['129 characters', 'a'.repeat(129)],
    ['a space', 'a b'],
    ['a non-ASCII letter', 'caf\u00e9'],
    ['a comma', 'a,b'],
    ['a number', 7],
    ['null', null],
  ])('refuses a source and a type that are %s', (_, bad) => {
    expect(onlyPointer(record({ source: bad }))).toBe('/source');
    expect(onlyPointer(record({ type: bad }))).toBe('/type');
  });

  it.each([
    ['missing', { source: undefined }, '/source'],
    ['missing type', { type: undefined }, '/type'],
    ['missing payload', { payload: undefined }, '/payload'],
  ])('refuses a record with a %s field', (_, extra, pointer) => {
    const body = JSON.parse(JSON.stringify(record(extra))) as unknown;
    expect(onlyPointer(body)).toBe(pointer);
  });

  it.each([
    'not-a-uuid',
    '0190a6e4-1c2b-7d3e-8f40-123456789ab',
    '0190a6e41c2b7d3e8f40123456789abc',
    '{0190a6e4-1c2b-7d3e-8f40-123456789abc}',
    'g190a6e4-1c2b-7d3e-8f40-123456789abc',
    '',
  ])('refuses the id %j', (id) => {
    expect(onlyPointer(record({ id }))).toBe('/id');
  });

  it('refuses an id that is not a string', () => {
    expect(onlyPointer(record({ id: 12 }))).toBe('/id');
  });

  it.each([
    ['not RFC 3339', '15/03/2026 12:00'],
    ['without an offset', '2026-03-15T12:00:00'],
    ['without seconds', '2026-03-15T12:00Z'],
    ['with a space separator', '2026-03-15 12:00:00Z'],
    ['with ten fractional digits', '2026-03-15T12:00:00.1234567890Z'],
    ['on 30 February', '2026-02-30T12:00:00Z'],
    ['at hour 24', '2026-03-15T24:00:00Z'],
    ['at minute 60', '2026-03-15T12:60:00Z'],
    ['on a leap second', '2026-03-14T23:59:60Z'],
    ['with offset hour 24', '2026-03-15T12:00:00+24:00'],
    ['in month 13', '2026-13-01T00:00:00Z'],
    ['1 ms beyond the past window', new Date(NOW - 7 * DAY - 1).toISOString()],
    ['long ago', '1970-01-01T00:00:00Z'],
    ['1 ms beyond the future window', new Date(NOW + DAY + 1).toISOString()],
    ['far in the future', '2999-01-01T00:00:00+14:00'],
    ['a number', NOW],
  ])('refuses a timestamp %s', (_, timestamp) => {
    const error = rejectionOf(record({ timestamp }));
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]?.pointer).toBe('/timestamp');
  });

  it('says which side of the window a timestamp falls off', () => {
    expect(rejectionOf(record({ timestamp: '2026-03-01T00:00:00Z' })).issues[0]?.detail).toMatch(/7 days in the past/);
    expect(rejectionOf(record({ timestamp: '2026-03-17T00:00:00Z' })).issues[0]?.detail).toMatch(/1 day in the future/);
  });

  it.each([
    ['an array', []],
    ['a string', '{}'],
    ['null', null],
    ['a number', 1],
  ])('refuses a payload that is %s', (_, payload) => {
    expect(onlyPointer(record({ payload }))).toBe('/payload');
  });

  it('refuses a payload deeper than the limit, counting arrays', () => {
    expect(onlyPointer(record({ payload: { a: { b: { c: { d: {} } } } } }))).toBe('/payload');
    expect(onlyPointer(record({ payload: { a: [[[[1]]]] } }))).toBe('/payload');
  });

  it('refuses a hostile nesting depth without overflowing the stack', () => {
    const deep = JSON.parse(`{"source":"s","type":"t","payload":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`);
    expect(onlyPointer(deep)).toBe('/payload');
    const nest = (inner: string) => `${'['.repeat(100_000)}${inner}${']'.repeat(100_000)}`;
    expect(onlyPointer(JSON.parse(`{"source":"s","type":"t","payload":{},"x":${nest('1')}}`))).toBe('/x');
    expect(onlyPointer(JSON.parse(`{"records":${nest('{}')}}`))).toBe('/records/0');
  });

  it('refuses a payload one byte over the limit, counting UTF-8 bytes', () => {
    const error = rejectionOf(record({ payload: { s: `${'é'.repeat(124)}x` } }));
    expect(error.issues).toEqual([{ pointer: '/payload', detail: 'is 257 bytes as JSON; the limit is 256' }]);
  });

  it('refuses the NUL character in a payload string and in a payload key', () => {
    const body = JSON.parse('{"source":"s","type":"t","payload":{"a":"x\\u0000y","b\\u0000":1,"c":["\\u0000"]}}');
    expect(pointersOf(body).sort()).toEqual(['/payload/a', '/payload/b\u0000', '/payload/c/0']);
  });

  it('refuses a lone surrogate in a payload string and key, but not a surrogate pair', () => {
    const body = JSON.parse('{"source":"s","type":"t","payload":{"a":"\\ud800","\\udc00":1,"ok":"\\ud83d\\ude00"}}');
    expect(pointersOf(body).sort()).toEqual(['/payload/a', '/payload/\udc00']);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('refuses the key %s at top level and nested', (key) => {
    const top = JSON.parse(`{"source":"s","type":"t","payload":{},"${key}":{}}`);
    expect(onlyPointer(top)).toBe(`/${key}`);
    const nested = JSON.parse(`{"source":"s","type":"t","payload":{"a":[{"${key}":{"polluted":true}}]}}`);
    expect(onlyPointer(nested)).toBe(`/payload/a/0/${key}`);
    const inBatch = JSON.parse(
      `{"records":[{"source":"s","type":"t","payload":{}},{"source":"s","type":"t","payload":{"${key}":1}}]}`,
    );
    expect(onlyPointer(inBatch)).toBe(`/records/1/payload/${key}`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a number JSON cannot carry', () => {
    expect(onlyPointer(JSON.parse('{"source":"s","type":"t","payload":{"big":1e400}}'))).toBe('/payload/big');
  });

  it('refuses unknown fields, escaping them as JSON pointer tokens', () => {
    expect(pointersOf(record({ extra: 1, 'a/b~c': 2 })).sort()).toEqual(['/a~1b~0c', '/extra']);
    expect(onlyPointer({ records: [record()], more: true })).toBe('/more');
  });

  it('refuses an empty batch, a batch over the limit and a records member that is not an array', () => {
    expect(onlyPointer({ records: [] })).toBe('/records');
    expect(onlyPointer({ records: [record(), record(), record(), record()] })).toBe('/records');
    expect(rejectionOf({ records: [record(), record(), record(), record()] }).issues[0]?.detail).toBe(
      'must hold at most 3 records',
    );
    expect(onlyPointer({ records: {} })).toBe('/records');
    expect(onlyPointer({ records: null })).toBe('/records');
  });

  it('refuses batch items that are not objects', () => {
    expect(pointersOf({ records: [null, 'x', []] }).sort()).toEqual(['/records/0', '/records/1', '/records/2']);
  });

  it('refuses a batch that repeats an id, in any case', () => {
    const error = rejectionOf({ records: [record({ id: ID }), record(), record({ id: ID.toUpperCase() })] });
    expect(error.issues).toEqual([{ pointer: '/records/2/id', detail: 'repeats the id of /records/0' }]);
  });

  it('lists every failing field of one record at once', () => {
    const body = { id: 'x', source: '', type: 'a b', timestamp: '2026-02-30T00:00:00Z', payload: [], extra: 1 };
    expect(pointersOf(body).sort()).toEqual(['/extra', '/id', '/payload', '/source', '/timestamp', '/type']);
  });

  it('says what each pattern means, in a batch as for one record', () => {
    const fields = { id: 'not-a-uuid', source: 'a b', type: 'ü', timestamp: '2026-03-15 12:00' };
    const expected = [
      { pointer: '/records/1/id', detail: 'must be a UUID' },
      { pointer: '/records/1/source', detail: 'must contain only letters, digits and . _ : / -' },
      {
        pointer: '/records/1/timestamp',
        detail: 'must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z',
      },
      { pointer: '/records/1/type', detail: 'must contain only letters, digits and . _ : / -' },
    ];
    const byPointer = (a: { pointer: string }, b: { pointer: string }) => a.pointer.localeCompare(b.pointer);
    expect(rejectionOf({ records: [record(), record(fields)] }).issues.toSorted(byPointer)).toEqual(expected);
    expect(rejectionOf(record(fields)).issues.toSorted(byPointer)).toEqual(
      expected.map((issue) => ({ ...issue, pointer: issue.pointer.replace('/records/1', '') })),
    );
  });

  it('lists every failing field of every record of a batch at once, with their indexes', () => {
    const body = {
      records: [
        record({ type: 'no spaces' }),
        record({ source: 's'.repeat(129), timestamp: '2020-01-01T00:00:00Z' }),
        JSON.parse('{"type":"t","payload":{"k":"\\u0000"}}'),
      ],
    };
    const error = rejectionOf(body);
    expect(error.code).toBe('validation-failed');
    expect(error.issues.map((i) => i.pointer).sort()).toEqual([
      '/records/0/type',
      '/records/1/source',
      '/records/1/timestamp',
      '/records/2/payload/k',
      '/records/2/source',
    ]);
    expect(error.message).toMatch(/and 4 more problems/);
  });
});

// --- properties --------------------------------------------------------------------------------------------

const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-';
const nameArb = fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 128 });
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** An RFC 3339 text for `ms` shown at `offsetMinutes`, with `extraDigits` sub-millisecond digits. */
function rfc3339(ms: number, offsetMinutes: number, extraDigits: string): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const offset = offsetMinutes === 0 ? 'Z' : `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  return `${local}${extraDigits}${offset}`;
}

const timestampArb = fc
  .tuple(
    fc.integer({ min: NOW - LIMITS.maxPastMs + 1, max: NOW + LIMITS.maxFutureMs - 1 }),
    fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
    // Up to microseconds, what PostgreSQL keeps (more digits are covered in timestamp.test.ts).
    fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 3 }),
  )
  .map(([ms, offset, digits]) => rfc3339(ms, offset, digits));

/** The UTC text an RFC 3339 text from `timestampArb` is stored as, computed with Date and string slicing. */
function expectedUtc(text: string): string {
  const parts = /^(.{23})(\d*)(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (parts === null) throw new Error(`unexpected timestamp ${text}`);
  const [, upToMillis = '', moreDigits = '', zone = ''] = parts;
  return `${new Date(Date.parse(`${upToMillis}${zone}`)).toISOString().slice(0, -1)}${moreDigits}Z`;
}

const safeKey = fc.string({ maxLength: 12 }).filter((key) => !RESERVED.has(key));
const payloadArb = fc.dictionary(
  safeKey,
  fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.string(),
      fc.array(tie('value'), { maxLength: 3 }),
      fc.dictionary(safeKey, tie('value'), { maxKeys: 3 }),
    ),
  })).value,
  { maxKeys: 5 },
);

const validRecordArb = fc.record(
  {
    id: fc.uuid().chain((id) => fc.constantFrom(id, id.toUpperCase())),
    source: nameArb,
    type: nameArb,
    timestamp: timestampArb,
    payload: payloadArb,
  },
  { requiredKeys: ['source', 'type', 'payload'] },
);

const bigValidator = createRecordValidator({ ...LIMITS, payloadMaxBytes: 1 << 20, payloadMaxDepth: 64 }, () => NOW);

interface ValidInput {
  readonly id?: string;
  readonly source: string;
  readonly type: string;
  readonly timestamp?: string;
  readonly payload: unknown;
}

function expectRoundTrip(input: ValidInput, out: NewRecord): void {
  expect(out.source).toBe(input.source);
  expect(out.type).toBe(input.type);
  expect(out.payload).toEqual(input.payload);
  expect(out.id).toBe(input.id === undefined ? out.id : input.id.toLowerCase());
  expect(out.id).toMatch(/^[0-9a-f-]{36}$/);
  expect(out.timestamp).toBe(input.timestamp === undefined ? '2026-03-15T12:00:00.000Z' : expectedUtc(input.timestamp));
}

describe('createRecordValidator: properties', () => {
  it('accepts every valid record and returns it unchanged, but for a lower-cased id and a UTC timestamp', () => {
    fc.assert(
      fc.property(validRecordArb, (input) => {
        // What arrives is JSON.parse of the wire text.
        const body = JSON.parse(JSON.stringify(input)) as ValidInput;
        const [out] = bigValidator.validateIngestBody(body);
        if (out === undefined) throw new Error('no record returned');
        expectRoundTrip(body, out);
      }),
      { numRuns: 300 },
    );
  });

  it('accepts every valid batch with distinct ids', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(validRecordArb, { minLength: 1, maxLength: 3, selector: (r) => r.id?.toLowerCase() ?? {} }),
        (records) => {
          const body = JSON.parse(JSON.stringify({ records })) as { records: ValidInput[] };
          const out = bigValidator.validateIngestBody(body);
          expect(out).toHaveLength(records.length);
          body.records.forEach((input, index) => {
            const stored = out[index];
            if (stored === undefined) throw new Error('record missing');
            expectRoundTrip(input, stored);
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  const onlyValidationErrors = (body: unknown): void => {
    try {
      validator.validateIngestBody(body);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      expect(error.issues.length).toBeGreaterThan(0);
      for (const issue of error.issues) expect(issue.pointer === '' || issue.pointer.startsWith('/')).toBe(true);
    }
  };

  it('throws nothing but a ValidationError for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        onlyValidationErrors(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 400 },
    );
  });

  it('throws nothing but a ValidationError for objects with record-like and random keys', () => {
    const key = fc.oneof(
      fc.constantFrom('id', 'source', 'type', 'timestamp', 'payload', 'records', '__proto__', 'constructor'),
      fc.string({ maxLength: 6 }),
    );
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      timestampArb,
      fc.uuid(),
      nameArb,
      fc.constantFrom('2026-02-30T00:00:00Z', '\u0000', '\ud800', 'x'.repeat(300)),
    );
    const recordLike = fc.dictionary(key, value, { maxKeys: 7 });
    const body = fc.oneof(
      recordLike,
      fc.record({ records: fc.array(fc.oneof(recordLike, fc.jsonValue({ maxDepth: 2 })), { maxLength: 5 }) }),
    );
    fc.assert(
      fc.property(body, (candidate) => {
        // Through the wire form, so that a "__proto__" key is an own property as JSON.parse makes it.
        onlyValidationErrors(JSON.parse(JSON.stringify(candidate)));
      }),
      { numRuns: 400 },
    );
  });
});
