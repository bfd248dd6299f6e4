import { describe, expect, it } from '@jest/globals';
import Ajv2020 from 'ajv/dist/2020.js';
import fc from 'fast-check';
import type Joi from 'joi';
import { API_ROUTES, buildOpenApiDocument } from '#lib/api';
import { type RecordSchemaLimits, recordSchemas } from '#lib/records';

const LIMITS: RecordSchemaLimits = {
  maxBatchRecords: 3,
  payloadMaxBytes: 1024,
  payloadMaxDepth: 4,
  maxPastMs: 7 * 86_400_000,
  maxFutureMs: 24 * 3_600_000,
};
const document = buildOpenApiDocument(LIMITS);

type Json = Record<string, unknown>;
const at = (value: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>(
    (node, key) => (node !== null && typeof node === 'object' ? (node as Json)[key] : undefined),
    value,
  );

describe('buildOpenApiDocument', () => {
  it('is an OpenAPI 3.1 document with the public paths and operations', () => {
    expect(document.openapi).toBe('3.1.0');
    const paths = document.paths as Record<string, Json>;
    expect(Object.keys(paths)).toEqual(expect.arrayContaining(['/data', '/data/{id}', '/openapi.json']));
    expect(Object.keys(paths['/data'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(paths['/data/{id}'] ?? {})).toEqual(['get']);
    expect(Object.keys(paths['/openapi.json'] ?? {})).toEqual(['get']);
    const operationIds = Object.values(paths).flatMap((item) => Object.values(item).map((op) => at(op, 'operationId')));
    expect(new Set(operationIds).size).toBe(operationIds.length);
  });

  it('has exactly one operation per route of the route table, and nothing else', () => {
    const operations = Object.entries(document.paths as Record<string, Json>).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => `${method.toUpperCase()} ${path} ${String(at(op, 'operationId'))}`),
    );
    expect(operations.sort()).toEqual(API_ROUTES.map((r) => `${r.method} ${r.path} ${r.operationId}`).sort());
  });

  it('describes the list query parameters from the joi schema, limit as a bounded integer', () => {
    const parameters = at(document, 'paths', '/data', 'get', 'parameters') as Json[];
    expect(parameters.map((p) => p.name)).toEqual(['source', 'type', 'from', 'to', 'limit', 'cursor']);
    expect(parameters.find((p) => p.name === 'limit')?.schema).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 100,
    });
  });

  it('states the limits it was built with', () => {
    expect(at(document, 'components', 'schemas', 'BatchInput', 'properties', 'records', 'maxItems')).toBe(3);
    expect(at(document, 'components', 'schemas', 'BatchInput', 'properties', 'records', 'minItems')).toBe(1);
    expect(at(document, 'components', 'schemas', 'RecordInput', 'properties', 'payload', 'description')).toMatch(
      /1024 bytes and 4 levels/,
    );
    expect(
      at(
        buildOpenApiDocument({ ...LIMITS, maxBatchRecords: 500 }),
        'components',
        'schemas',
        'BatchInput',
        'properties',
        'records',
        'maxItems',
      ),
    ).toBe(500);
  });

  it('resolves every $ref it contains', () => {
    const refs = JSON.stringify(document).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const target = ref.slice('"$ref":"'.length, -1);
      expect(target.startsWith('#/')).toBe(true);
      expect(at(document, ...target.slice(2).split('/'))).toBeDefined();
    }
  });

  it('loads into ajv as a JSON Schema 2020-12 resource', () => {
    const ajv = new Ajv2020.default({ strict: false, validateFormats: false });
    expect(() => ajv.addSchema({ ...document, $id: 'https://example.test/openapi.json' })).not.toThrow();
  });
});

// --- the generated JSON Schemas agree with joi ---------------------------------------------------------------

const ajv = new Ajv2020.default({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema({ ...document, $id: 'https://example.test/openapi.json' });
const ajvRecord = ajv.getSchema('https://example.test/openapi.json#/components/schemas/RecordInput');
const ajvBatch = ajv.getSchema('https://example.test/openapi.json#/components/schemas/BatchInput');
const { recordInput: recordInputSchema, batchInput: joiBatch } = recordSchemas(LIMITS);

const joiAccepts = (schema: Joi.Schema, value: unknown): boolean =>
  schema.validate(value, { abortEarly: false, convert: false }).error === undefined;

const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-';
const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
const nameArb = fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 128 });
// Matching the RFC 3339 pattern, calendar-valid or not: the calendar and the window are outside JSON Schema.
const timestampArb = fc
  .tuple(
    fc.integer({ min: 0, max: 9999 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 9 }),
    fc.constantFrom('Z', 'z', '+05:30', '-00:00', '+23:59'),
    fc.constantFrom('T', 't'),
  )
  .map(
    ([y, m, d, h, frac, zone, t]) => `${pad(y, 4)}-${pad(m)}-${pad(d)}${t}${pad(h)}:00:00${frac && `.${frac}`}${zone}`,
  );
const uuidArb = fc.uuid().chain((id) => fc.constantFrom(id, id.toUpperCase()));
const payloadArb = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
const validRecordArb: fc.Arbitrary<Json> = fc.record(
  { id: uuidArb, source: nameArb, type: nameArb, timestamp: timestampArb, payload: payloadArb },
  { requiredKeys: ['source', 'type', 'payload'] },
);

const wrongType = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constant([]),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.constant({}),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.string(), { maxKeys: 2 }),
);
const badName = fc.oneof(
  fc.constant(''),
  fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 129, maxLength: 140 }),
  fc
    .tuple(nameArb, fc.constantFrom(' ', 'é', ',', '\u0000', '😀', '\n', '+', '\\'), fc.nat())
    .map(([name, char, i]) => `${name.slice(0, i % (name.length + 1))}${char}${name.slice(i % (name.length + 1))}`),
  wrongType,
);
const badId = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 40 }),
  fc.uuid().map((id) => id.replaceAll('-', '')),
  fc.uuid().map((id) => `${id}0`),
  fc.uuid().map((id) => `{${id}}`),
  wrongType,
);
const extraKey = fc
  .stringMatching(/^[A-Za-z_]{1,10}$/)
  .filter((key) => !['id', 'source', 'type', 'timestamp', 'payload', '__proto__', 'constructor'].includes(key));

type Mutation = (record: Json) => fc.Arbitrary<Json>;
const set =
  (key: string, value: fc.Arbitrary<unknown>): Mutation =>
  (record) =>
    value.map((v) => ({ ...record, [key]: v }));
const without =
  (key: string): Mutation =>
  (record) => {
    const { [key]: _dropped, ...rest } = record;
    return fc.constant(rest);
  };
const MUTATIONS: readonly Mutation[] = [
  set('source', badName),
  set('type', badName),
  set('id', badId),
  set('timestamp', wrongType),
  set('timestamp', fc.constant('')),
  set('payload', fc.oneof(wrongType.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)))),
  without('source'),
  without('type'),
  without('payload'),
  without('id'),
  without('timestamp'),
  (record) => fc.tuple(extraKey, fc.jsonValue({ maxDepth: 1 })).map(([k, v]) => ({ ...record, [k]: v })),
];

/** A valid record, or one with one to three mutations applied. */
const candidateRecordArb: fc.Arbitrary<Json> = fc
  .tuple(validRecordArb, fc.array(fc.constantFrom(...MUTATIONS), { maxLength: 3 }))
  .chain(([record, mutations]) =>
    mutations.reduce<fc.Arbitrary<Json>>((arb, mutate) => arb.chain(mutate), fc.constant(record)),
  );

const candidateBatchArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ records: fc.array(candidateRecordArb, { maxLength: LIMITS.maxBatchRecords + 2 }) }),
  fc.record({ records: fc.array(validRecordArb, { minLength: 0, maxLength: LIMITS.maxBatchRecords + 1 }) }),
  fc.record({
    records: fc.array(validRecordArb, { minLength: 1, maxLength: 2 }),
    extra: fc.jsonValue({ maxDepth: 1 }),
  }),
  fc.record({ records: wrongType }),
  fc.constant({}),
  wrongType,
);

describe('generated JSON Schemas agree with joi', () => {
  it('compiles RecordInput and BatchInput', () => {
    expect(typeof ajvRecord).toBe('function');
    expect(typeof ajvBatch).toBe('function');
  });

  it('RecordInput accepts exactly what recordInputSchema accepts', () => {
    const check = ajvRecord;
    if (check === undefined) throw new Error('RecordInput did not compile');
    let accepted = 0;
    fc.assert(
      fc.property(candidateRecordArb, (candidate) => {
        const value = JSON.parse(JSON.stringify(candidate)) as unknown;
        const verdict = joiAccepts(recordInputSchema, value);
        expect({ value, ajv: check(value) }).toEqual({ value, ajv: verdict });
        if (verdict) accepted++;
      }),
      { numRuns: 1500 },
    );
    // The generator must exercise both verdicts, or the agreement says little.
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(1400);
  });

  it('BatchInput accepts exactly what batchInputSchema accepts', () => {
    const check = ajvBatch;
    if (check === undefined) throw new Error('BatchInput did not compile');
    let accepted = 0;
    fc.assert(
      fc.property(candidateBatchArb, (candidate) => {
        const value = JSON.parse(JSON.stringify(candidate)) as unknown;
        const verdict = joiAccepts(joiBatch, value);
        expect({ value, ajv: check(value) }).toEqual({ value, ajv: verdict });
        if (verdict) accepted++;
      }),
      { numRuns: 800 },
    );
    expect(accepted).toBeGreaterThan(50);
    expect(accepted).toBeLessThan(750);
  });

  it.each([
    ['a valid record', { source: 's', type: 't', payload: {} }, true],
    ['a 128-character name', { source: 'x'.repeat(128), type: 't', payload: {} }, true],
    ['a 129-character name', { source: 'x'.repeat(129), type: 't', payload: {} }, false],
    ['a 30 February timestamp', { source: 's', type: 't', payload: {}, timestamp: '2026-02-30T00:00:00Z' }, true],
    ['a timestamp without offset', { source: 's', type: 't', payload: {}, timestamp: '2026-02-03T00:00:00' }, false],
    ['an array payload', { source: 's', type: 't', payload: [] }, false],
    ['an extra key', { source: 's', type: 't', payload: {}, x: 1 }, false],
  ])('both judge %s the same way', (_, value, expected) => {
    expect(joiAccepts(recordInputSchema, value)).toBe(expected);
    expect(ajvRecord?.(value)).toBe(expected);
  });
});
