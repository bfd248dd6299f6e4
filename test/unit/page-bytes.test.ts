/**
 * `pageOf`, the byte bound of list pages and export chunks, and the rule by which PostgreSQL leaves rows out
 * (lib/db/record-repository.ts#listStatement: row n goes out when n <= 2 or the rows before it hold at most
 * maxBytes): the page a caller makes of what the store sent equals the page of every row; and `readPage`, which
 * asks for as many rows as the bound holds at its estimate of bytes per row, reads that same page whatever the
 * estimate, without having the store build many rows it does not show when the estimate is right.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { type ListedRecord, type ListQuery, pageOf, readPage } from '#lib/records';

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

/** A store over rows held newest first (positions are their index), leaving rows out as the SQL does. */
function memoryStore(all: readonly number[]) {
  const rows: ListedRecord[] = all.map((bytes, i) => ({
    id: `00000000-0000-4000-8000-${String(all.length - i).padStart(12, '0')}`,
    timestamp: new Date(Date.UTC(2026, 0, 1) + (all.length - i) * 1000).toISOString(),
    json: '',
    bytes,
  }));
  const stats = { queries: 0, built: 0 };
  return {
    rows,
    stats,
    async list(query: ListQuery): Promise<readonly ListedRecord[]> {
      const start = query.after === undefined ? 0 : rows.findIndex((r) => r.id === query.after?.id) + 1;
      const limited = rows.slice(start, start + query.limit);
      stats.queries++;
      stats.built += limited.length; // PostgreSQL builds the JSON of every row the LIMIT lets through
      let before = 0;
      return limited.filter((row, n) => {
        const out = n < 2 || before <= (query.maxBytes ?? Number.MAX_SAFE_INTEGER);
        before += row.bytes;
        return out;
      });
    },
  };
}

describe('readPage', () => {
  it('reads the page pageOf makes of all rows, whatever its estimate of bytes per row', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3_000 }), { maxLength: 80 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
        fc.nat(10),
        async (sizes, limit, maxBytes, estimate, skipped) => {
          const store = memoryStore(sizes);
          const skip = Math.min(skipped, sizes.length);
          const after = store.rows[skip - 1];
          const request = { filter: {}, after: after && { timestamp: after.timestamp, id: after.id }, limit, maxBytes };
          const read = await readPage(store, request, estimate);
          const expected = pageOf(store.rows.slice(skip, skip + limit + 1), limit, maxBytes);
          expect({ shown: read.shown.map((r) => r.id), more: read.more }).toEqual({
            shown: expected.shown.map((r) => r.id),
            more: expected.more,
          });
          // Every query reads at least one row the page did not have yet: the loop ends.
          expect(store.stats.queries).toBeLessThanOrEqual(limit + 1);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('builds about the rows it shows once it knows the size of the rows, and all limit + 1 while it does not', async () => {
    const store = memoryStore(Array.from({ length: 5_000 }, () => 61_600));
    const request = { filter: {}, after: undefined, limit: 1_000, maxBytes: 4 * 1024 * 1024 };
    const first = await readPage(store, request, undefined);
    expect(first.shown).toHaveLength(68);
    expect(store.stats).toEqual({ queries: 1, built: 1_001 });
    const last = first.shown.at(-1);
    const next = await readPage(store, { ...request, after: last }, first.bytesPerRow);
    expect(next.shown).toHaveLength(68);
    expect(store.stats).toEqual({ queries: 2, built: 1_001 + 70 });
  });
});
