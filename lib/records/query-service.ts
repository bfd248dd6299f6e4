import { AppError, type FieldIssue, InvalidParameterError } from '#lib/errors';
import type { CursorCodec } from './cursor.ts';
import { isUuid } from './ids.ts';
import type { PageKey, RecordCache, RecordStore } from './ports.ts';
import { NAME_MAX_LENGTH, NAME_PATTERN } from './schema.ts';
import { createSingleFlight } from './single-flight.ts';
import { normalizeRfc3339, parseRfc3339 } from './timestamp.ts';
import type { ListFilter, ListPage, ListQuery, StoredRecord } from './types.ts';

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;
const KNOWN_PARAMETERS = new Set(['source', 'type', 'from', 'to', 'limit', 'cursor']);

/** Raw query-string parameters as the HTTP layer received them. */
export type ListParameters = Readonly<Record<string, string | undefined>>;

export interface QueryService {
  /** The record with this id; throws `invalid-parameter` for a malformed id and `not-found` when absent. */
  getById(id: string): Promise<StoredRecord>;
  /** One page, newest first; `nextCursor` is null on the last page. */
  list(parameters: ListParameters): Promise<ListPage & { readonly filter: ListFilter; readonly limit: number }>;
}

export interface QueryServiceDeps {
  readonly store: RecordStore;
  readonly cursors: CursorCodec;
  /** Optional read-through cache; without it every read goes to the store. */
  readonly cache?: RecordCache;
}

/** The read side of the domain: parameter validation, keyset pagination, cursors, read-through cache. */
export function createQueryService({ store, cursors, cache }: QueryServiceDeps): QueryService {
  // Concurrent misses on one key share one store read per process (a hot key must not stampede PostgreSQL).
  const recordFlights = createSingleFlight<StoredRecord | undefined>();
  const pageFlights = createSingleFlight<ListPage>();

  async function readRecord(id: string): Promise<StoredRecord | undefined> {
    if (cache === undefined) return store.findById(id);
    const cached = await cache.getRecord(id);
    if (cached.kind === 'hit') return cached.value;
    if (cached.kind === 'absent') return undefined;
    // After a recent write of the id, join only reads that began after it: an older one may have missed the row.
    return recordFlights.run(cached.kind === 'written' ? `written:${id}` : id, async () => {
      const found = await store.findById(id);
      await (found === undefined ? cache.putAbsent(id) : cache.putRecord(found));
      return found;
    });
  }

  async function readPage(query: ListQuery, key: PageKey): Promise<ListPage> {
    const compute = async (): Promise<ListPage> => {
      const rows = await store.list(query);
      const records = rows.slice(0, key.limit);
      const last = records.at(-1);
      const nextCursor =
        rows.length > key.limit && last !== undefined
          ? cursors.encode({ timestamp: last.timestamp, id: last.id }, key.filter)
          : null;
      return { records, nextCursor };
    };
    if (cache === undefined) return compute();
    const cached = await cache.getPage(key);
    if (cached.page !== undefined) return cached.page;
    const { token } = cached;
    return pageFlights.run(JSON.stringify([key, token]), async () => {
      const page = await compute();
      if (token !== undefined) await cache.putPage(key, token, page);
      return page;
    });
  }

  return {
    async getById(id) {
      if (!isUuid(id)) {
        throw new InvalidParameterError(
          [{ pointer: '/id', detail: 'must be a UUID' }],
          `"${truncate(id)}" is not a UUID.`,
        );
      }
      const record = await readRecord(id.toLowerCase());
      if (record === undefined) throw new AppError('not-found', `No record has the id ${id.toLowerCase()}.`);
      return record;
    },

    async list(parameters) {
      const { filter, limit, cursor } = parseListParameters(parameters);
      const after = cursor === undefined ? undefined : cursors.decode(cursor, filter);
      const query: ListQuery = { ...filter, limit: limit + 1, ...(after && { after }) };
      const page = await readPage(query, { filter, limit, cursor });
      return { ...page, filter, limit };
    },
  };
}

/** Validates list parameters, reporting every bad one at once. */
export function parseListParameters(parameters: ListParameters): {
  filter: ListFilter;
  limit: number;
  cursor: string | undefined;
} {
  const issues: FieldIssue[] = [];
  for (const key of Object.keys(parameters)) {
    if (!KNOWN_PARAMETERS.has(key)) issues.push({ pointer: `/${key}`, detail: 'is not a known query parameter' });
  }
  const name = (key: 'source' | 'type'): string | undefined => {
    const value = parameters[key];
    if (value === undefined) return undefined;
    if (value.length === 0 || value.length > NAME_MAX_LENGTH || !NAME_PATTERN.test(value)) {
      issues.push({
        pointer: `/${key}`,
        detail: `must be 1–${NAME_MAX_LENGTH} characters of letters, digits and . _ : / -`,
      });
    }
    return value;
  };
  const instant = (key: 'from' | 'to'): { text: string; ms: number } | undefined => {
    const value = parameters[key];
    if (value === undefined) return undefined;
    const text = normalizeRfc3339(value);
    const ms = parseRfc3339(value);
    if (text === undefined || ms === undefined) {
      issues.push({
        pointer: `/${key}`,
        detail: 'must be an RFC 3339 date-time with an offset in years 0001–9999, e.g. 2026-01-31T12:00:00Z',
      });
      return undefined;
    }
    return { text, ms };
  };
  const source = name('source');
  const type = name('type');
  const from = instant('from');
  const to = instant('to');
  if (from && to && from.ms > to.ms) issues.push({ pointer: '/from', detail: 'must not be after to' });
  let limit = DEFAULT_PAGE_LIMIT;
  const rawLimit = parameters.limit;
  if (rawLimit !== undefined) {
    limit = /^\d{1,7}$/.test(rawLimit) ? Number(rawLimit) : Number.NaN;
    if (!(limit >= 1 && limit <= MAX_PAGE_LIMIT)) {
      issues.push({ pointer: '/limit', detail: `must be an integer from 1 to ${MAX_PAGE_LIMIT}` });
    }
  }
  const cursor = parameters.cursor;
  if (issues.length > 0) throw new InvalidParameterError(issues);
  const filter: ListFilter = {
    ...(source !== undefined && { source }),
    ...(type !== undefined && { type }),
    ...(from !== undefined && { from: from.text }),
    ...(to !== undefined && { to: to.text }),
  };
  return { filter, limit, cursor };
}

const truncate = (text: string): string => (text.length > 64 ? `${text.slice(0, 64)}…` : text);
