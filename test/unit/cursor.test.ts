import { createHmac } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { AppError } from '#lib/errors';
import { createCursorCodec, type KeysetPosition, type ListFilter } from '#lib/records';

const SECRET = 'unit-test-cursor-secret';
const codec = createCursorCodec(SECRET);
const POSITION: KeysetPosition = { timestamp: '2026-03-15T12:00:00.123Z', id: '0190a6e4-1c2b-7d3e-8f40-123456789abc' };
const FILTER: ListFilter = { source: 'sensor-1', type: 'reading' };
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function expectInvalidCursor(decode: () => unknown): void {
  let thrown: unknown;
  try {
    decode();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(AppError);
  expect((thrown as AppError).code).toBe('invalid-cursor');
  expect((thrown as AppError).issues.map((issue) => issue.pointer)).toEqual(['/cursor']);
}

/** A cursor for an arbitrary payload, signed the way the codec signs (HMAC-SHA256 truncated to 12 bytes). */
function forge(payload: string, secret = SECRET): string {
  const bytes = Buffer.from(payload);
  const tag = createHmac('sha256', secret).update(bytes).digest().subarray(0, 12);
  return Buffer.concat([bytes, tag]).toString('base64url');
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
const nameArb = fc.string({ unit: fc.constantFrom(...BASE64URL, '.', ':', '/'), minLength: 1, maxLength: 40 });
const timestampArb = fc
  .tuple(
    fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2200, 0, 1) }),
    fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
    fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 6 }),
  )
  .map(([ms, offset, extra]) => {
    const local = new Date(ms + offset * 60_000).toISOString().slice(0, 23);
    const abs = Math.abs(offset);
    const zone = offset === 0 ? 'Z' : `${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
    return `${local}${extra}${zone}`;
  });
const positionArb = fc.record({ timestamp: timestampArb, id: fc.uuid() });
const filterArb = fc.record(
  { source: nameArb, type: nameArb, from: timestampArb, to: timestampArb },
  { requiredKeys: [] },
) as fc.Arbitrary<ListFilter>;

const canonical = (f: ListFilter) => JSON.stringify([f.source, f.type, f.from, f.to]);

describe('createCursorCodec', () => {
  it('decodes what it encoded, for any position and filter', () => {
    fc.assert(
      fc.property(positionArb, filterArb, (position, filter) => {
        const cursor = codec.encode(position, filter);
        expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(codec.decode(cursor, filter)).toEqual(position);
        // A filter is the same whether a key is absent or undefined.
        expect(codec.decode(cursor, { ...filter })).toEqual(position);
      }),
      { numRuns: 300 },
    );
  });

  it('is deterministic and shared by every codec with the same secret', () => {
    const cursor = codec.encode(POSITION, FILTER);
    expect(createCursorCodec(SECRET).encode(POSITION, FILTER)).toBe(cursor);
    expect(createCursorCodec(SECRET).decode(cursor, FILTER)).toEqual(POSITION);
  });

  it('refuses a cursor with any character before the last one changed', () => {
    fc.assert(
      fc.property(positionArb, filterArb, fc.nat(), fc.constantFrom(...BASE64URL), (position, filter, at, char) => {
        const cursor = codec.encode(position, filter);
        const index = at % (cursor.length - 1);
        fc.pre(cursor[index] !== char);
        const altered = `${cursor.slice(0, index)}${char}${cursor.slice(index + 1)}`;
        expectInvalidCursor(() => codec.decode(altered, filter));
      }),
      { numRuns: 500 },
    );
  });

  // Base64url text whose length is not a multiple of 4 ends in a character with unused low bits, and Buffer
  // ignores a lone trailing character: unless the codec insists on the canonical encoding, several texts decode
  // to the same bytes and a client-altered cursor is accepted.
  it('refuses a cursor with its last character changed or a character appended', () => {
    const acceptedVariants = (cursor: string, filter: ListFilter, variants: string[]): string[] =>
      variants
        .filter((variant) => {
          if (variant === cursor) return false;
          try {
            codec.decode(variant, filter);
            return true;
          } catch {
            return false;
          }
        })
        .map((variant) => `…${variant.slice(-3)}`);
    const cursor = codec.encode(POSITION, FILTER);
    expect(cursor.length % 4).not.toBe(0);
    const changedLast = [...BASE64URL].map((char) => `${cursor.slice(0, -1)}${char}`);
    expect(acceptedVariants(cursor, FILTER, changedLast)).toEqual([]);

    // A timestamp with enough fractional digits that the cursor's length is a multiple of 4.
    const position = [0, 1, 2]
      .map((digits) => ({ ...POSITION, timestamp: `2026-03-15T12:00:00.123${'4'.repeat(digits)}Z` }))
      .find((p) => codec.encode(p, FILTER).length % 4 === 0);
    if (position === undefined) throw new Error('no position gives a cursor length divisible by 4');
    const aligned = codec.encode(position, FILTER);
    const appended = [...BASE64URL].map((char) => `${aligned}${char}`);
    expect(acceptedVariants(aligned, FILTER, appended)).toEqual([]);
  });

  it('refuses every truncation', () => {
    const cursor = codec.encode(POSITION, FILTER);
    for (let length = 0; length < cursor.length; length++) {
      expectInvalidCursor(() => codec.decode(cursor.slice(0, length), FILTER));
    }
    expectInvalidCursor(() => codec.decode(cursor.slice(1), FILTER));
  });

  it('refuses garbage, the empty string, padding, other alphabets and overlong input', () => {
    const cursor = codec.encode(POSITION, FILTER);
    for (const bad of ['', ' ', 'abc', '!!!!', `${cursor}=`, `${cursor}A`, cursor.replace(/./, '+'), `${cursor} `]) {
      expectInvalidCursor(() => codec.decode(bad, FILTER));
    }
    expectInvalidCursor(() => codec.decode('A'.repeat(10_000), FILTER));
    fc.assert(
      fc.property(fc.string({ maxLength: 600 }), (garbage) => {
        fc.pre(garbage !== cursor);
        expectInvalidCursor(() => codec.decode(garbage, FILTER));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses base64url of random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (bytes) => {
        expectInvalidCursor(() => codec.decode(Buffer.from(bytes).toString('base64url'), FILTER));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a cursor decoded with another filter', () => {
    fc.assert(
      fc.property(positionArb, filterArb, filterArb, (position, issuedFor, usedWith) => {
        fc.pre(canonical(issuedFor) !== canonical(usedWith));
        expectInvalidCursor(() => codec.decode(codec.encode(position, issuedFor), usedWith));
      }),
      { numRuns: 300 },
    );
    const cursor = codec.encode(POSITION, FILTER);
    expectInvalidCursor(() => codec.decode(cursor, {}));
    expectInvalidCursor(() => codec.decode(cursor, { source: 'sensor-1' }));
    expectInvalidCursor(() => codec.decode(cursor, { ...FILTER, from: '2026-01-01T00:00:00Z' }));
    // source and type are distinct slots: swapping them is another filter.
    expectInvalidCursor(() => codec.decode(cursor, { source: 'reading', type: 'sensor-1' }));
  });

  it('refuses a cursor issued by a codec with another secret', () => {
    const other = createCursorCodec('another-cursor-secret');
    fc.assert(
      fc.property(positionArb, filterArb, (position, filter) => {
        expectInvalidCursor(() => codec.decode(other.encode(position, filter), filter));
        expectInvalidCursor(() => other.decode(codec.encode(position, filter), filter));
      }),
      { numRuns: 100 },
    );
  });

  it('refuses correctly signed payloads of another version or shape, without throwing anything else', () => {
    const digest = JSON.parse(Buffer.from(codec.encode(POSITION, FILTER), 'base64url').subarray(0, -12).toString())[3];
    const ok = JSON.stringify([1, POSITION.timestamp, POSITION.id, digest]);
    expect(codec.decode(forge(ok), FILTER)).toEqual(POSITION);
    const payloads = [
      JSON.stringify([2, POSITION.timestamp, POSITION.id, digest]),
      JSON.stringify([1, POSITION.timestamp, POSITION.id]),
      JSON.stringify([1, POSITION.timestamp, POSITION.id, digest, 'x']),
      JSON.stringify([1, '2026-02-30T00:00:00Z', POSITION.id, digest]),
      JSON.stringify([1, 12, POSITION.id, digest]),
      JSON.stringify([1, POSITION.timestamp, 'not-a-uuid', digest]),
      JSON.stringify([1, POSITION.timestamp, null, digest]),
      JSON.stringify({ 0: 1, 1: POSITION.timestamp, 2: POSITION.id, 3: digest, length: 4 }),
      'null',
      '[1,',
      '\u0000',
    ];
    for (const payload of payloads) expectInvalidCursor(() => codec.decode(forge(payload), FILTER));
  });
});
