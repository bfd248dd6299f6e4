import { createHash } from 'node:crypto';
import { AppError, InvalidParameterError } from '#lib/errors';
import type { CursorCodec } from './cursor.ts';
import { isUuid } from './ids.ts';
import type { ArchiveLocator, PageDocument, PageSource, RecordDocument, RecordReader, RecordSource } from './ports.ts';
import { parseListParameters } from './schema.ts';
import type { ListFilter, ListQuery } from './types.ts';

/** Raw query-string parameters as the HTTP layer received them. */
export type ListParameters = Readonly<Record<string, string | undefined>>;

export interface QueryService {
  /** The record with this id, ready to send; throws `invalid-parameter` for a malformed id, `not-found` when absent. */
  getById(id: string): Promise<RecordDocument>;
  /** One page, newest first, ready to send; `nextCursor` is null on the last page. */
  list(parameters: ListParameters): Promise<PageDocument & { readonly filter: ListFilter; readonly limit: number }>;
}

export interface QueryServiceDeps {
  /** The by-id read chain (caches in front of the store), see `documentFromStore` for its innermost link. */
  readonly records: RecordSource;
  /** The page cache chain; its `compute` is the store query. */
  readonly pages: PageSource;
  readonly reader: RecordReader;
  readonly cursors: CursorCodec;
  /** With an S3 archive: a miss whose id belongs to an archived day says so (`record-archived`). */
  readonly archive?: ArchiveLocator | undefined;
}

/** A strong validator of a representation: computed once when it is read from the store, then cached with it. */
export const etagOf = (json: string): string =>
  `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"`;

/** The innermost link of a by-id chain: the store, with the ETag computed once per read. */
export function documentFromStore(reader: RecordReader): RecordSource {
  return {
    async get(id) {
      const json = await reader.findJsonById(id);
      return json === undefined ? undefined : { json, etag: etagOf(json) };
    },
  };
}

/** The read side of the domain: parameter validation, keyset pagination and cursors over the read chains. */
export function createQueryService({ records, pages, reader, cursors, archive }: QueryServiceDeps): QueryService {
  return {
    async getById(id) {
      if (!isUuid(id)) {
        throw new InvalidParameterError(
          [{ pointer: '/id', detail: 'must be a UUID' }],
          `"${truncate(id)}" is not a UUID.`,
        );
      }
      const normalized = id.toLowerCase();
      const document = await records.get(normalized);
      if (document === undefined) {
        const day = await archive?.dayOf(normalized);
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

    async list(parameters) {
      const { filter, limit, cursor } = parseListParameters(parameters);
      const after = cursor === undefined ? undefined : cursors.decode(cursor, filter);
      const query: ListQuery = { ...filter, limit: limit + 1, ...(after && { after }) };
      const page = await pages.get({ filter, limit, cursor }, async () => {
        const rows = await reader.list(query);
        const shown = rows.slice(0, limit);
        const last = shown.at(-1);
        const nextCursor =
          rows.length > limit && last !== undefined
            ? cursors.encode({ timestamp: last.timestamp, id: last.id }, filter)
            : null;
        // The rows are JSON text already: the page is assembled, not serialised.
        const json = `{"records":[${shown.map((row) => row.json).join(',')}],"next_cursor":${JSON.stringify(nextCursor)}}`;
        return { json, nextCursor };
      });
      return { ...page, filter, limit };
    },
  };
}

const truncate = (text: string): string => (text.length > 64 ? `${text.slice(0, 64)}…` : text);
