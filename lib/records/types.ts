/** JSON values as they arrive from `JSON.parse` and leave through `JSON.stringify`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** A validated record ready to be stored; `id` and `timestamp` are always filled in by then. */
export interface NewRecord {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /** RFC 3339 with an offset, as the client sent it or the receipt time. */
  readonly timestamp: string;
  readonly payload: JsonObject;
  /** W3C traceparent of the request that wrote it, carried to its event; never served. */
  readonly traceContext?: string;
}

/** A record as stored and served: timestamps normalised to UTC (`Z`), `received_at` added by the server. */
export interface StoredRecord {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly timestamp: string;
  readonly payload: JsonObject;
  readonly received_at: string;
}

export type WriteStatus = 'created' | 'duplicate';

export interface WriteResult {
  readonly id: string;
  readonly status: WriteStatus;
}

/** What a successful POST answers; the same value is replayed for a repeated Idempotency-Key. */
export interface IngestResult {
  readonly records: readonly WriteResult[];
}

/** Filters of a list query after validation. `from` is inclusive, `to` exclusive. */
export interface ListFilter {
  readonly source?: string;
  readonly type?: string;
  readonly from?: string;
  readonly to?: string;
}

/** A position in the `(timestamp DESC, id DESC)` order: list pages continue strictly after it. */
export interface KeysetPosition {
  readonly timestamp: string;
  readonly id: string;
}

export interface ListQuery extends ListFilter {
  readonly limit: number;
  readonly after?: KeysetPosition;
}

export interface ListPage {
  readonly records: readonly StoredRecord[];
  readonly nextCursor: string | null;
}
