/**
 * The load tests' generators (load-tests/lib) must send what the service accepts: every generated body is run
 * through the service's own validator, and every deliberately bad smoke request is refused by it for the very
 * fields the smoke test expects to be named.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ValidationError } from '#lib/errors';
import { createRecordValidator, isUuid, NAME_PATTERN, type RecordSchemaLimits } from '#lib/records';
import { parseSettings } from '../../load-tests/lib/env.ts';
import { createRng, hashSeed } from '../../load-tests/lib/prng.ts';
import {
  DEFAULT_RECORD_OPTIONS,
  formatTimestamp,
  generateBatch,
  generateRecord,
  type RecordOptions,
  sourceNames,
  utf8Length,
} from '../../load-tests/lib/records.ts';
import {
  createMixedStream,
  createRequestIds,
  DEFAULT_MIX,
  prefillRecords,
  prefillRequests,
  type RequestSpec,
  recordOptionsOf,
  smokePlan,
  take,
} from '../../load-tests/lib/requests.ts';
import { SCENARIO_DEFAULTS } from '../../load-tests/lib/scenarios.ts';

/** The service's defaults (README: RECORDS_MAX_BATCH, RECORD_PAYLOAD_MAX_*, RECORD_MAX_PAST_DAYS/FUTURE_HOURS). */
const LIMITS: RecordSchemaLimits = {
  maxBatchRecords: 1000,
  payloadMaxBytes: 64 * 1024,
  payloadMaxDepth: 16,
  maxPastMs: 7 * 86_400_000,
  maxFutureMs: 24 * 3_600_000,
};
const NOW = Date.parse('2026-11-26T12:00:00.000Z');
const validator = createRecordValidator(LIMITS, () => NOW);
const options = (overrides: Partial<RecordOptions> = {}): RecordOptions => ({
  ...DEFAULT_RECORD_OPTIONS,
  now: NOW,
  runTag: 'rtest',
  ...overrides,
});

/** The issues' pointers when the validator refuses `body`, or undefined when it accepts it. */
function refusal(body: unknown): string[] | undefined {
  try {
    validator.validateIngestBody(body);
    return undefined;
  } catch (error) {
    if (error instanceof ValidationError) return error.issues.map((issue) => issue.pointer);
    throw error;
  }
}

/** Every answer a smoke step could need, so the generator runs to its end without a service. */
const fakeAnswer = { status: 200, headers: { etag: '"e"' }, body: '{"next_cursor":"c"}' };

function smokeSpecs(seed: number): RequestSpec[] {
  const specs: RequestSpec[] = [];
  const plan = smokePlan({
    rng: createRng(seed),
    record: options(),
    batchSize: 5,
    requestId: createRequestIds('rtest', 's'),
  });
  for (let step = plan.next(); step.done !== true; step = plan.next(fakeAnswer)) specs.push(step.value);
  return specs;
}

describe('seeded PRNG', () => {
  it('repeats its stream for a seed and differs between seeds', () => {
    const draw = (seed: number) => Array.from({ length: 20 }, createRng(seed).next);
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(hashSeed('a', 1)).toBe(hashSeed('a', 1));
    expect(hashSeed('a', 1)).not.toBe(hashSeed('a', 2));
  });

  it('draws floats in [0, 1), bounded integers and RFC 9562 version-4 UUIDs without repeats', () => {
    const rng = createRng(7);
    const ids = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const x = rng.next();
      expect(x >= 0 && x < 1).toBe(true);
      const n = rng.int(-3, 3);
      expect(n >= -3 && n <= 3 && Number.isInteger(n)).toBe(true);
      const id = rng.uuid();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(5_000);
  });
});

describe('record generators', () => {
  it('write RFC 3339 timestamps at any offset for the same instant', () => {
    const at = Date.parse('2026-03-01T00:30:00.125Z');
    expect(formatTimestamp(at, 0)).toBe('2026-03-01T00:30:00.125Z');
    expect(formatTimestamp(at, 330)).toBe('2026-03-01T06:00:00.125+05:30');
    expect(formatTimestamp(at, -570)).toBe('2026-02-28T15:00:00.125-09:30');
    for (const offset of [0, 330, -570, 840]) expect(Date.parse(formatTimestamp(at, offset))).toBe(at);
  });

  it('make records the service validator accepts, for any seed, size and batch', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: 1, max: 50 }),
        (seed, payloadBytes, count) => {
          const rng = createRng(seed);
          const single = generateRecord(rng, options({ payloadBytes }));
          expect(refusal(single)).toBeUndefined();
          expect(isUuid(single.id)).toBe(true);
          const batch = generateBatch(rng, count, options({ payloadBytes: Math.min(payloadBytes, 2_000) }));
          expect(refusal(batch)).toBeUndefined();
          const stored = validator.validateIngestBody(JSON.parse(JSON.stringify(batch)));
          expect(stored.map((r) => r.id)).toEqual(batch.records.map((r) => r.id));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('pad payloads to about the requested size and keep names to the schema', () => {
    const rng = createRng(1);
    for (const bytes of [256, 4_096, 60_000]) {
      const record = generateRecord(rng, options({ payloadBytes: bytes }));
      const size = utf8Length(JSON.stringify(record.payload));
      expect(Math.abs(size - bytes)).toBeLessThanOrEqual(4);
      expect(record.source).toMatch(NAME_PATTERN);
      expect(record.type).toMatch(NAME_PATTERN);
    }
    expect(utf8Length('a°会😀')).toBe(Buffer.byteLength('a°会😀'));
    expect(sourceNames({ runTag: 'rx', sources: 3 })).toEqual(['load.rx.s00', 'load.rx.s01', 'load.rx.s02']);
  });

  it('prefill the same records for the same seed, as batches the validator accepts', () => {
    const a = prefillRecords(9, 250, options());
    expect(prefillRecords(9, 250, options())).toEqual(a);
    const specs = prefillRequests(a, 100, createRequestIds('rtest', 'p'));
    expect(specs.map((s) => JSON.parse(s.body ?? '').records.length)).toEqual([100, 100, 50]);
    for (const spec of specs) expect(refusal(JSON.parse(spec.body ?? ''))).toBeUndefined();
  });
});

describe('mixed request stream', () => {
  const settings = parseSettings({ SEED: '5' }, SCENARIO_DEFAULTS.mixed, NOW);

  it('keeps the read ratio, reads only known records, writes valid bodies of BATCH_SIZE', () => {
    const record = recordOptionsOf(settings, NOW);
    const known = prefillRecords(settings.seed, 100, record);
    const knownIds = new Set(known.map((r) => r.id));
    const mix = { ...DEFAULT_MIX, readRatio: 0.9, batchSize: 3, known, record };
    const specs = take(createMixedStream(createRng(1), mix, createRequestIds(record.runTag, 'm')), 5_000);
    const writes = specs.filter((s) => s.method === 'POST');
    expect(writes.length / specs.length).toBeGreaterThan(0.08);
    expect(writes.length / specs.length).toBeLessThan(0.12);
    for (const spec of writes) {
      const body = JSON.parse(spec.body ?? '');
      expect(body.records).toHaveLength(3);
      expect(refusal(body)).toBeUndefined();
    }
    for (const spec of specs.filter((s) => s.name === 'get-by-id')) {
      expect(knownIds.has(spec.path.slice('/data/'.length))).toBe(true);
    }
    const lists = specs.filter((s) => s.name === 'list-page');
    expect(lists.length).toBeGreaterThan(0);
    for (const spec of lists)
      expect(spec.path).toMatch(new RegExp(`^/data\\?source=load\\.${record.runTag}\\.s\\d\\d&limit=20$`));
    expect(new Set(specs.map((s) => s.headers['x-request-id'])).size).toBe(specs.length);
  });

  it('sends single-record bodies at BATCH_SIZE 1 and only writes at READ_RATIO 0', () => {
    const record = recordOptionsOf(settings, NOW);
    const mix = { ...DEFAULT_MIX, readRatio: 0, batchSize: 1, known: [], record };
    for (const spec of take(createMixedStream(createRng(2), mix, createRequestIds('r', 'w')), 200)) {
      expect(spec.name).toBe('post-one');
      const body = JSON.parse(spec.body ?? '');
      expect(refusal(body)).toBeUndefined();
      expect(spec.expect).toEqual({ kind: 'created', ids: [body.id] });
    }
  });
});

describe('smoke plan', () => {
  const specs = smokeSpecs(3);

  it('sends valid bodies where it expects 201, and ids the service will echo', () => {
    const created = specs.filter((s) => s.expect.kind === 'created');
    expect(created.length).toBeGreaterThanOrEqual(5);
    for (const spec of created) expect(refusal(JSON.parse(spec.body ?? ''))).toBeUndefined();
    for (const spec of specs.filter((s) => s.expect.kind !== 'probe')) {
      expect(spec.headers['x-request-id']).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    }
  });

  it('expects each 422 to name exactly the fields the validator refuses', () => {
    const invalid = specs.filter((s) => s.expect.kind === 'problem' && s.expect.code === 'validation-failed');
    expect(invalid.length).toBe(2);
    for (const spec of invalid) {
      const pointers = refusal(JSON.parse(spec.body ?? ''));
      expect(spec.expect.kind === 'problem' && spec.expect.pointers).toEqual(pointers);
    }
  });

  it('sends malformed JSON, a wrong media type and an oversized body where it expects 400, 415 and 413', () => {
    const byName = new Map(specs.map((s) => [s.name, s]));
    expect(() => JSON.parse(byName.get('post-malformed')?.body ?? '')).toThrow();
    expect(byName.get('post-wrong-media-type')?.headers['content-type']).toBe('text/plain');
    expect(Buffer.byteLength(byName.get('post-too-large')?.body ?? '')).toBeGreaterThan(1024 * 1024);
  });

  it('covers every route and every documented error status', () => {
    const statuses = new Set<string | number>(
      specs.map((s) => (s.expect.kind === 'problem' ? s.expect.status : s.expect.kind)),
    );
    for (const status of [
      400,
      404,
      405,
      413,
      415,
      422,
      'created',
      'record',
      'not-modified',
      'page',
      'replay',
      'openapi',
      'probe',
    ]) {
      expect(statuses.has(status)).toBe(true);
    }
  });
});
