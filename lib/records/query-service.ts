import { createHash } from 'node:crypto';
import { AppError, InvalidParameterError } from '#lib/errors';
import type { CursorCodec } from './cursor.ts';
import { isUuid } from './ids.ts';
import { type PageRead, readPage } from './page.ts';
import type {
  ArchiveLocator,
  Caller,
  PageDocument,
  PageSource,
  RecordDocument,
  RecordReader,
  RecordSource,
} from './ports.ts';
import { type ListReads, primaryLists } from './read-your-writes.ts';
import { parseExportParameters, parseListParameters } from './schema.ts';
import type { KeysetPosition, ListFilter } from './types.ts';

/** Raw query-string parameters as the HTTP layer received them. */
export type ListParameters = Readonly<Record<string, string | undefined>>;

export interface QueryService {
  /**
   * The record with this id, ready to send; throws `invalid-parameter` for a malformed id, `not-found` when
   * absent or of a source `caller` may not read (the two are indistinguishable).
   */
  getById(id: string, caller: Caller): Promise<RecordDocument>;
  /**
   * One page, newest first, ready to send; `nextCursor` (bound to `caller`) is null on the last page. Throws
   * `forbidden` for a source `caller` may not read, and for no source unless it may read every source.
   */
  list(parameters: ListParameters, caller: Caller): Promise<ListedPage>;
  /**
   * Every record of the filter (strictly after `after`), newest first, as NDJSON text: one record a line, in chunks
   * of at most `exportChunkRows` records and `maxPageBytes` bytes, each read by its own keyset query only when the
   * one before it has been taken (and one ahead, so the store and the consumer overlap). The parameters, the grant
   * and the first chunk are checked before it resolves, so those fail as answers, not mid-stream; a later failure
   * rejects the iteration. No chunk is read after `signal` aborts (the client has gone). Every chunk reads the
   * database the first one read.
   */
  exportRecords(parameters: ListParameters, caller: Caller, signal: AbortSignal): Promise<ExportStream>;
}

/** A page as `list` answers it. */
export interface ListedPage extends PageDocument {
  readonly filter: ListFilter;
  readonly limit: number;
  /**
   * Seconds by which the page may trail the primary at the moment it is answered: 0 when it was read from the
   * primary (or is a cached page its version check proved current), the replica's lag bound when read from the
   * replica, undefined when that bound is not known.
   */
  readonly stalenessSeconds: number | undefined;
}

/** The export's lines, and how stale its first chunk may be (later chunks are read later; see docs/api.md). */
export interface ExportStream extends AsyncIterable<string> {
  readonly stalenessSeconds: number | undefined;
}

export interface QueryServiceDeps {
  /** The by-id read chain (caches in front of the store), see `documentFromStore` for its innermost link. */
  readonly records: RecordSource;
  /** The page cache chain; its `compute` is the store query. */
  readonly pages: PageSource;
  readonly reader: RecordReader;
  /** Where lists and exports read (a replica or the primary); `reader` for all of them without it. */
  readonly lists?: ListReads | undefined;
  readonly cursors: CursorCodec;
  /** With an S3 archive: a miss whose id belongs to an archived day says so (`record-archived`). */
  readonly archive?: ArchiveLocator | undefined;
  /** A page (and an export chunk) ends early, with a next cursor, once its records hold this many bytes of JSON. */
  readonly maxPageBytes: number;
  /** Records per export chunk (one keyset query each); default 1000. */
  readonly exportChunkRows?: number;
}

const EXPORT_CHUNK_ROWS = 1000;
const ROW_BYTES_SOURCES = 1000;

/** A strong validator of a representation: computed once when it is read from the store, then cached with it. */
export const etagOf = (json: string): string =>
  `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"`;

/** The innermost link of a by-id chain: the store, with the ETag computed once per read. */
export function documentFromStore(reader: RecordReader): RecordSource {
  return {
    async get(id) {
      const found = await reader.findById(id);
      return found === undefined ? undefined : { ...found, etag: etagOf(found.json) };
    },
  };
}

/** The read side of the domain: parameter validation, keyset pagination and cursors over the read chains. */
export function createQueryService(deps: QueryServiceDeps): QueryService {
  const { records, pages, reader, cursors, archive, maxPageBytes } = deps;
  const lists = deps.lists ?? primaryLists(reader);
  const chunkRows = deps.exportChunkRows ?? EXPORT_CHUNK_ROWS;
  // The bytes per row the last page of a source had (`readPage`'s estimate), for a bounded number of sources.
  const rowBytes = new Map<string, number>();
  const read = async (
    from: RecordReader,
    filter: ListFilter,
    limit: number,
    after: KeysetPosition | undefined,
    hint?: number,
  ) => {
    const scope = filter.source ?? '';
    const page = await readPage(from, { filter, after, limit, maxBytes: maxPageBytes }, hint ?? rowBytes.get(scope));
    if (page.bytesPerRow !== undefined) {
      if (rowBytes.size >= ROW_BYTES_SOURCES && !rowBytes.has(scope)) rowBytes.clear();
      rowBytes.set(scope, page.bytesPerRow);
    }
    return page;
  };
  return {
    async getById(id, caller) {
      if (!isUuid(id)) {
        throw new InvalidParameterError(
          [{ pointer: '/id', detail: 'must be a UUID' }],
          `"${truncate(id)}" is not a UUID.`,
        );
      }
      const normalized = id.toLowerCase();
      const document = await records.get(normalized);
      // Checked on what any tier returns, so no cache can hand a record to a caller who may not read it.
      if (document === undefined || !caller.mayRead(document.source)) {
        // Only an id nobody serves now may have been archived. The registry cannot say whose it was (it keeps no
        // source), so only a caller who may read every source learns where it went: to anyone else it is absent.
        const day = document === undefined && caller.readsEverySource ? await archive?.dayOf(normalized) : undefined;
        if (day !== undefined) {
          throw new AppError(
            'record-archived',
            `The record ${normalized} was archived with the records of ${day} (UTC) and is no longer served here; it can be read from the archive, or its day restored by an operator.`,
          );
        }
        throw new AppError('not-found', `No record has the id ${normalized}.`);
      }
      return document;
    },

    async list(parameters, caller) {
      const { filter, limit, cursor } = parseListParameters(parameters);
      assertMayList(filter, caller);
      const after = cursor === undefined ? undefined : cursors.decode(cursor, filter, caller.id);
      // Chosen before the page cache is asked, and its bound read after the answer is known. A cached page reports
      // the route's figure, which is right only because pages are cached solely when lists read the primary (the
      // page cache's version check is what makes them current; functions/query/app.ts).
      const route = lists.route();
      // Pages hold cursors bound to their caller, so each caller has pages of its own.
      const page = await pages.get({ filter, limit, cursor, caller: caller.id }, async () => {
        const { shown, more } = await read(route.reader, filter, limit, after);
        const last = shown.at(-1);
        const nextCursor =
          more && last !== undefined
            ? cursors.encode({ timestamp: last.timestamp, id: last.id }, filter, caller.id)
            : null;
        // The rows are JSON text already: the page is assembled, not serialised.
        const json = `{"records":[${shown.map((row) => row.json).join(',')}],"next_cursor":${JSON.stringify(nextCursor)}}`;
        return { json, nextCursor };
      });
      return { ...page, filter, limit, stalenessSeconds: route.stalenessSeconds() };
    },

    async exportRecords(parameters, caller, signal) {
      const { filter, after } = parseExportParameters(parameters);
      assertMayList(filter, caller);
      const route = lists.route();
      const first = await read(route.reader, filter, chunkRows, after);
      const stalenessSeconds = route.stalenessSeconds();
      const chunks = (async function* chunks(): AsyncGenerator<string> {
        let chunk: PageRead = first;
        for (;;) {
          const last = chunk.shown.at(-1);
          if (last === undefined) return;
          // The next chunk is read while this one is written; its rejection is handled where it is awaited (or,
          // if the consumer has left by then, nowhere: the catch keeps it from being an unhandled rejection).
          const next =
            chunk.more && !signal.aborted ? read(route.reader, filter, chunkRows, last, chunk.bytesPerRow) : undefined;
          next?.catch(() => undefined);
          yield `${chunk.shown.map((row) => row.json).join('\n')}\n`;
          if (next === undefined || signal.aborted) return;
          chunk = await next;
        }
      })();
      return { stalenessSeconds, [Symbol.asyncIterator]: () => chunks };
    },
  };
}

/** A list or an export names a source the caller may read, or none when it may read every source. */
function assertMayList(filter: ListFilter, caller: Caller): void {
  if (filter.source === undefined ? caller.readsEverySource : caller.mayRead(filter.source)) return;
  throw new AppError(
    'forbidden',
    filter.source === undefined
      ? 'Listing without a source needs read access to every source (read:*); name a source you may read.'
      : `This token may not read the source ${filter.source}.`,
    {
      issues: [
        {
          pointer: '/source',
          detail: filter.source === undefined ? 'is required for this token' : 'is not readable with this token',
        },
      ],
    },
  );
}

const truncate = (text: string): string => (text.length > 64 ? `${text.slice(0, 64)}…` : text);
