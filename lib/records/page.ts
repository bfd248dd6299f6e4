import type { ListedRecord } from './types.ts';

/** What a page shows of the rows the store returned, and whether any row was left out. */
export interface PageCut<T> {
  readonly shown: readonly T[];
  /** A row was left out: the next page starts strictly after the last shown row. */
  readonly more: boolean;
}

/**
 * The rows of one page (a list page or an export chunk): the first row always, so a record larger than the
 * bound still gets a page of its own; then each next row while the page stays within `limit` rows and `maxBytes`
 * bytes of record JSON. The store needs to return only these rows and the one after them (`more`):
 * lib/db/record-repository.ts leaves the rest in PostgreSQL by the same rule.
 */
export function pageOf<T extends Pick<ListedRecord, 'bytes'>>(
  rows: readonly T[],
  limit: number,
  maxBytes: number,
): PageCut<T> {
  let count = 0;
  let bytes = 0;
  for (const row of rows) {
    if (count === limit || (count > 0 && bytes + row.bytes > maxBytes)) break;
    bytes += row.bytes;
    count++;
  }
  return { shown: count === rows.length ? rows : rows.slice(0, count), more: count < rows.length };
}
