import type { RecordReader } from './ports.ts';
import type { KeysetPosition, ListedRecord, ListFilter } from './types.ts';

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

/** One page to read: its filter, where it starts and its bounds. */
export interface PageRequest {
  readonly filter: ListFilter;
  readonly after: KeysetPosition | undefined;
  readonly limit: number;
  readonly maxBytes: number;
}

/** A page read, and the bytes per row it saw (the estimate for the next page like it). */
export interface PageRead extends PageCut<ListedRecord> {
  readonly bytesPerRow: number | undefined;
}

/**
 * Reads the rows of one page in as few keyset queries as it can without having PostgreSQL build many rows the
 * page will not show: PostgreSQL builds the JSON of every row a query's LIMIT lets through, also those the byte
 * bound then leaves out, and a limit=1000 page of 60 KiB records would build 1001 records to send 68. So a query
 * asks for the rows `maxBytes` holds at `bytesPerRow` (the estimate, from the pages read before), the one after
 * them and one to spare; and again, after the last row, only while the page is neither full nor the store
 * exhausted (an estimate too high). Without an estimate it asks for `limit` + 1 rows at once. Every query keeps
 * the byte bound, so nothing past the bound reaches the process whatever the estimate.
 */
export async function readPage(
  reader: Pick<RecordReader, 'list'>,
  request: PageRequest,
  bytesPerRow: number | undefined,
): Promise<PageRead> {
  const { filter, limit, maxBytes } = request;
  const rows: ListedRecord[] = [];
  let bytes = 0;
  let after = request.after;
  for (;;) {
    const wanted = limit + 1 - rows.length;
    const perRow = rows.length > 0 ? bytes / rows.length : bytesPerRow;
    const ask = perRow === undefined ? wanted : Math.min(wanted, Math.floor((maxBytes - bytes) / perRow) + 2);
    const got = await reader.list({ ...filter, limit: ask, maxBytes: maxBytes - bytes, ...(after && { after }) });
    for (const row of got) {
      rows.push(row);
      bytes += row.bytes;
    }
    const cut = pageOf(rows, limit, maxBytes);
    const last = got.at(-1);
    // Only a page whose every row is shown reads on: then `bytes` is within `maxBytes` (or one row, and done).
    if (cut.more || got.length < ask || last === undefined) {
      return { ...cut, bytesPerRow: rows.length > 0 ? bytes / rows.length : bytesPerRow };
    }
    after = { timestamp: last.timestamp, id: last.id };
  }
}
