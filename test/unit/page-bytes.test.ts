/**
 * `pageOf`, the byte bound of list pages and export chunks, and the rule by which PostgreSQL leaves rows out
 * (lib/db/record-repository.ts#listStatement: row n goes out when n <= 2 or the rows before it hold at most
 * maxBytes): the page a caller makes of what the store sent equals the page of every row.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { pageOf } from '#lib/records';

interface Row {
  readonly n: number;
  readonly bytes: number;
}

/** What the store sends, in the SQL's words. */
function storeSends(rows: readonly Row[], maxBytes: number): Row[] {
  let before = 0;
  return rows.filter((row, index) => {
    const out = index < 2 || before <= maxBytes;
    before += row.bytes;
    return out;
  });
}

const rowsArb = fc
  .array(fc.integer({ min: 1, max: 5_000 }), { maxLength: 60 })
  .map((sizes) => sizes.map((bytes, n) => ({ n, bytes })));

describe('pageOf', () => {
  it('shows the first row even when it alone is larger than the bound, and says more follow', () => {
    const page = pageOf(
      [
        { n: 0, bytes: 10_000 },
        { n: 1, bytes: 10 },
      ],
      100,
      1_000,
    );
    expect(page).toEqual({ shown: [{ n: 0, bytes: 10_000 }], more: true });
  });

  it('stops at the limit or at the bound, whichever comes first, and keeps a page that fits exactly', () => {
    const rows = Array.from({ length: 5 }, (_, n) => ({ n, bytes: 100 }));
    expect(pageOf(rows, 2, 1_000).shown.map((r) => r.n)).toEqual([0, 1]);
    expect(pageOf(rows, 5, 300)).toEqual({ shown: rows.slice(0, 3), more: true });
    expect(pageOf(rows, 5, 500)).toEqual({ shown: rows, more: false });
    expect(pageOf([], 5, 500)).toEqual({ shown: [], more: false });
  });

  it('makes the same page of what the store sends as of every row, for any sizes, limit and bound', () => {
    fc.assert(
      fc.property(rowsArb, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 20_000 }), (rows, limit, max) => {
        // The store is asked for limit + 1 rows (the one after the page says whether a next page exists).
        const asked = rows.slice(0, limit + 1);
        const all = pageOf(asked, limit, max);
        expect(pageOf(storeSends(asked, max), limit, max)).toEqual(all);
        const bytes = all.shown.reduce((sum, row) => sum + row.bytes, 0);
        expect(all.shown.length <= 1 || bytes <= max).toBe(true);
        expect(all.shown.length).toBeLessThanOrEqual(limit);
        expect(all.more).toBe(all.shown.length < asked.length);
        expect(asked.length === 0 || all.shown.length > 0).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});
