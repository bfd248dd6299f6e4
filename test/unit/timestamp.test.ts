import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { formatUtcTimestamp, normalizeRfc3339, parseRfc3339, RFC3339_PATTERN } from '#lib/records';

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `ms` written in the local time of `offsetMinutes`, with millisecond precision. */
function withOffset(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const abs = Math.abs(offsetMinutes);
  return `${local}${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

describe('parseRfc3339', () => {
  it('agrees with Date for any millisecond-precision instant at any offset', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1000, 0, 2), max: Date.UTC(9998, 11, 30) }),
        fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
        (ms, offset) => {
          const text = withOffset(ms, offset);
          expect(parseRfc3339(text)).toBe(ms);
          expect(parseRfc3339(text)).toBe(Date.parse(text));
          const utc = new Date(ms).toISOString();
          expect(parseRfc3339(utc)).toBe(ms);
          expect(parseRfc3339(utc.toLowerCase())).toBe(ms);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('accepts a day exactly when it exists in the calendar', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9999 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 31 }),
        (year, month, day) => {
          const date = new Date(0);
          date.setUTCFullYear(year, month - 1, day);
          const exists = date.getUTCMonth() === month - 1;
          const parsed = parseRfc3339(`${pad(year, 4)}-${pad(month)}-${pad(day)}T00:00:00Z`);
          expect(parsed).toBe(exists ? date.getTime() : undefined);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it.each([
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['2000-02-29T00:00:00Z', Date.UTC(2000, 1, 29)],
    ['0001-01-01T00:00:00Z', -62_135_596_800_000],
    ['0000-03-01T00:00:00Z', -62_162_035_200_000],
    ['9999-12-31T23:59:59.999Z', Date.UTC(9999, 11, 31, 23, 59, 59, 999)],
    ['2026-03-15T00:30:00+01:00', Date.UTC(2026, 2, 14, 23, 30)],
    ['2026-03-15T23:30:00-01:00', Date.UTC(2026, 2, 16, 0, 30)],
    ['2026-03-15T12:00:00-00:00', Date.UTC(2026, 2, 15, 12)],
    ['2026-03-15T12:00:00+23:59', Date.UTC(2026, 2, 15, 12) - (23 * 60 + 59) * 60_000],
    ['2026-03-15t12:00:00z', Date.UTC(2026, 2, 15, 12)],
  ])('parses %s', (text, expected) => {
    expect(parseRfc3339(text)).toBe(expected);
  });

  it('keeps fractional digits up to nine, and refuses ten', () => {
    const base = Date.UTC(2026, 2, 15, 12);
    expect(parseRfc3339('2026-03-15T12:00:00.5Z')).toBe(base + 500);
    expect(parseRfc3339('2026-03-15T12:00:00.05Z')).toBe(base + 50);
    expect(parseRfc3339('2026-03-15T12:00:00.007Z')).toBe(base + 7);
    expect(parseRfc3339('2026-03-15T12:00:00.999Z')).toBe(base + 999);
    expect(parseRfc3339('2026-03-15T12:00:00.0000Z')).toBe(base);
    expect(parseRfc3339('2026-03-15T12:00:00.123456Z')).toBeCloseTo(base + 123.456, 2);
    // Sub-microsecond digits are accepted; a double near 2026 cannot hold them all.
    expect(parseRfc3339('2026-03-15T12:00:00.999999999Z')).toBeGreaterThan(base + 999.99);
    expect(parseRfc3339('2026-03-15T12:00:00.999999999Z')).toBeLessThanOrEqual(base + 1000);
    expect(parseRfc3339('2026-03-15T12:00:00.1234567890Z')).toBeUndefined();
    expect(RFC3339_PATTERN.test('2026-03-15T12:00:00.123456789+05:30')).toBe(true);
  });

  it('gives every millisecond fraction exactly', () => {
    const base = Date.UTC(2026, 2, 15, 12);
    for (let ms = 0; ms < 1000; ms++) {
      expect(parseRfc3339(`2026-03-15T12:00:00.${pad(ms, 3)}Z`)).toBe(base + ms);
    }
  });

  it.each([
    ['30 February', '2026-02-30T00:00:00Z'],
    ['29 February of a common year', '2025-02-29T00:00:00Z'],
    ['29 February 1900', '1900-02-29T00:00:00Z'],
    ['31 April', '2026-04-31T00:00:00Z'],
    ['day 0', '2026-03-00T00:00:00Z'],
    ['day 32', '2026-01-32T00:00:00Z'],
    ['month 0', '2026-00-10T00:00:00Z'],
    ['month 13', '2026-13-10T00:00:00Z'],
    ['hour 24', '2026-03-15T24:00:00Z'],
    ['minute 60', '2026-03-15T12:60:00Z'],
    ['a leap second', '2016-12-31T23:59:60Z'],
    ['offset hour 24', '2026-03-15T12:00:00+24:00'],
    ['offset minute 60', '2026-03-15T12:00:00+05:60'],
    ['no offset', '2026-03-15T12:00:00'],
    ['no seconds', '2026-03-15T12:00Z'],
    ['a space separator', '2026-03-15 12:00:00Z'],
    ['a compact offset', '2026-03-15T12:00:00+0100'],
    ['an hour-only offset', '2026-03-15T12:00:00+01'],
    ['a one-digit month', '2026-3-15T12:00:00Z'],
    ['an expanded year', '+002026-03-15T12:00:00Z'],
    ['a comma before the fraction', '2026-03-15T12:00:00,5Z'],
    ['an empty fraction', '2026-03-15T12:00:00.Z'],
    ['leading space', ' 2026-03-15T12:00:00Z'],
    ['trailing text', '2026-03-15T12:00:00Zx'],
    ['a trailing newline', '2026-03-15T12:00:00Z\n'],
    ['a date only', '2026-03-15'],
    ['non-ASCII digits', '٢٠٢٦-03-15T12:00:00Z'],
    ['the empty string', ''],
  ])('refuses %s', (_, text) => {
    expect(parseRfc3339(text)).toBeUndefined();
  });
});

describe('normalizeRfc3339', () => {
  it('writes any millisecond-precision instant at any offset as the same instant in UTC', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1000, 0, 2), max: Date.UTC(9998, 11, 30) }),
        fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
        (ms, offset) => {
          expect(normalizeRfc3339(withOffset(ms, offset))).toBe(new Date(ms).toISOString());
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps up to six fractional digits exactly as sent', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2200, 0, 1) }),
        fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 3 }),
        (ms, more) => {
          const utc = new Date(ms).toISOString();
          expect(normalizeRfc3339(`${utc.slice(0, -1)}${more}Z`)).toBe(`${utc.slice(0, -1)}${more}Z`);
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each([
    ['2026-03-15T12:00:00Z', '2026-03-15T12:00:00.000Z'],
    ['2026-03-15t12:00:00.5z', '2026-03-15T12:00:00.500Z'],
    ['2026-03-15T00:30:00+01:00', '2026-03-14T23:30:00.000Z'],
    ['2026-03-15T12:00:00.123456789Z', '2026-03-15T12:00:00.123456789Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
  ])('normalises %s to %s', (text, expected) => {
    expect(normalizeRfc3339(text)).toBe(expected);
  });

  it.each([
    ['an invalid date', '2026-02-30T00:00:00Z'],
    ['the year 0000', '0000-06-01T00:00:00Z'],
    ['an instant before year 1 once the offset applies', '0001-01-01T00:00:00+00:01'],
    ['an instant after year 9999 once the offset applies', '9999-12-31T23:59:59-00:01'],
    ['text that is not RFC 3339', 'yesterday'],
  ])('refuses %s', (_, text) => {
    expect(normalizeRfc3339(text)).toBeUndefined();
  });

  // parseRfc3339 returns a double: near 2026 its resolution is about 0.24 µs, so a seventh or later nine rounds
  // the milliseconds up before they are floored, and the kept digits then follow the wrong millisecond.
  it.each([
    ['2026-03-15T12:00:00.1239999Z', '2026-03-15T12:00:00.1239999Z'],
    ['2026-03-15T12:00:00.999999999Z', '2026-03-15T12:00:00.999999999Z'],
    ['2026-03-15T13:00:00.12399999+01:00', '2026-03-15T12:00:00.12399999Z'],
  ])('keeps the millisecond of %s when seven to nine digits are sent', (text, expected) => {
    expect(normalizeRfc3339(text)).toBe(expected);
  });
});

describe('formatUtcTimestamp', () => {
  it.each([
    ['2026-11-26 13:40:47.123456', '2026-11-26T13:40:47.123456Z'],
    ['2026-11-26 13:40:47.123', '2026-11-26T13:40:47.123Z'],
    ['2026-11-26 13:40:47.123000', '2026-11-26T13:40:47.123Z'],
    ['2026-11-26 13:40:47.000000', '2026-11-26T13:40:47.000Z'],
    ['2026-11-26 13:40:47.12', '2026-11-26T13:40:47.120Z'],
    ['2026-11-26 13:40:47.000001', '2026-11-26T13:40:47.000001Z'],
    ['2026-11-26 13:40:47', '2026-11-26T13:40:47.000Z'],
  ])('formats %s as %s', (text, expected) => {
    expect(formatUtcTimestamp(text)).toBe(expected);
  });

  it('gives back a millisecond-precision UTC instant exactly as a client sent it', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(9999, 0, 1) }), (ms) => {
        const sent = new Date(ms).toISOString();
        // PostgreSQL's to_char(... 'YYYY-MM-DD HH24:MI:SS.US') of that instant.
        const stored = `${sent.slice(0, 10)} ${sent.slice(11, 23)}000`;
        expect(formatUtcTimestamp(stored)).toBe(sent);
        expect(parseRfc3339(formatUtcTimestamp(stored))).toBe(ms);
      }),
      { numRuns: 300 },
    );
  });
});
