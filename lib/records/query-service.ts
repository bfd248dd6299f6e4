import { AppError, type FieldIssue, InvalidParameterError } from '#lib/errors';
import type { CursorCodec } from './cursor.ts';
import { isUuid } from './ids.ts';
import type { RecordStore } from './ports.ts';
import { NAME_MAX_LENGTH, NAME_PATTERN } from './schema.ts';
import { normalizeRfc3339, parseRfc3339 } from './timestamp.ts';
import type { ListFilter, ListPage, StoredRecord } from './types.ts';

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
}

/** The read side of the domain: parameter validation, keyset pagination, cursors. */
export function createQueryService({ store, cursors }: QueryServiceDeps): QueryService {
  return {
    async getById(id) {
      if (!isUuid(id)) {
        throw new InvalidParameterError(
          [{ pointer: '/id', detail: 'must be a UUID' }],
          `"${truncate(id)}" is not a UUID.`,
        );
      }
      const record = await store.findById(id.toLowerCase());
      if (record === undefined) throw new AppError('not-found', `No record has the id ${id.toLowerCase()}.`);
      return record;
    },

    async list(parameters) {
      const { filter, limit, cursor } = parseListParameters(parameters);
      const after = cursor === undefined ? undefined : cursors.decode(cursor, filter);
      const rows = await store.list({ ...filter, limit: limit + 1, ...(after && { after }) });
      const records = rows.slice(0, limit);
      const last = records.at(-1);
      const nextCursor =
        rows.length > limit && last !== undefined
          ? cursors.encode({ timestamp: last.timestamp, id: last.id }, filter)
          : null;
      return { records, nextCursor, filter, limit };
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
