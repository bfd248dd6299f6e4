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
  /** `payload` as JSON text, serialised once by the validator and stored as it is. */
  readonly payloadJson: string;
  /** W3C traceparent of the request that wrote it, carried to its event; never served. */
  readonly traceContext?: string;
  /**
   * Whether the client chose the id, and whether it gave the timestamp: a client id names one content (a later
   * write of it with other content is an `id-conflict`), and a record sent without a timestamp is the same content
   * when sent again later. Absent means given.
   */
  readonly idGiven?: boolean;
  readonly timestampGiven?: boolean;
}

/** A record as stored and served (mirrors `storedRecordSchema`): UTC timestamps, `received_at` added by the server. */
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
  /**
   * The byte bound of a page (see `pageOf`): with it the store may leave out every row after the first one that
   * no longer fits, which the page never shows. Without it, no bound.
   */
  readonly maxBytes?: number;
}

/** One row of a list page: its keyset position and its JSON text as served. */
export interface ListedRecord {
  readonly id: string;
  /** UTC text with every digit PostgreSQL holds, so the keyset position is exact. */
  readonly timestamp: string;
  readonly json: string;
  /** The length of `json` in UTF-8 bytes, as it goes to the wire (and to Redis). */
  readonly bytes: number;
}
