/**
 * The interfaces the domain needs from the outside world. `lib/db` implements them; the domain never imports
 * a database, cache or broker client.
 */
import type { IngestResult, ListFilter, ListPage, ListQuery, NewRecord, StoredRecord, WriteResult } from './types.ts';

export interface IdempotencyClaim {
  readonly key: string;
  /** Digest of the request body: the same key with another body is a client error. */
  readonly fingerprint: string;
  /** What to remember for replays when this request commits. */
  readonly result: (written: readonly WriteResult[]) => IngestResult;
}

export type IdempotentWriteOutcome =
  | { readonly kind: 'committed'; readonly result: IngestResult }
  | { readonly kind: 'replayed'; readonly result: IngestResult }
  | { readonly kind: 'fingerprint-mismatch' }
  | { readonly kind: 'in-flight' };

export interface RecordStore {
  /** Stores the records atomically (all or none); ids already stored come back as `duplicate`. */
  insert(records: readonly NewRecord[]): Promise<readonly WriteResult[]>;
  /** As `insert`, and remembers the result under the key in the same transaction. */
  insertIdempotent(records: readonly NewRecord[], claim: IdempotencyClaim): Promise<IdempotentWriteOutcome>;
  findById(id: string): Promise<StoredRecord | undefined>;
  /** Newest first on `(timestamp, id)`; returns at most `limit` rows strictly after `after`. */
  list(query: ListQuery): Promise<readonly StoredRecord[]>;
}

/** Source of the current time, injected so that tests can pin it. */
export type Clock = () => number;

export type CacheLookup<T> =
  | { readonly kind: 'hit'; readonly value: T }
  | { readonly kind: 'absent' }
  | { readonly kind: 'miss' }
  /** Not cached, and a write of this id has been acknowledged recently. */
  | { readonly kind: 'written' };

/** A page lookup also returns the token under which a freshly computed page must be stored. */
export interface PageLookup {
  readonly page: ListPage | undefined;
  readonly token: string | undefined;
}

export interface PageKey {
  readonly filter: ListFilter;
  readonly limit: number;
  readonly cursor: string | undefined;
}

/**
 * A cache in front of the `RecordStore`. It is an accelerator, never a source of truth: every method is best
 * effort, bounded in time, and never throws — an unavailable cache behaves as a miss.
 */
export interface RecordCache {
  getRecord(id: string): Promise<CacheLookup<StoredRecord>>;
  putRecord(record: StoredRecord): Promise<void>;
  /** Remembers briefly that no record has this id (cleared by `recordsWritten`). */
  putAbsent(id: string): Promise<void>;
  getPage(key: PageKey): Promise<PageLookup>;
  putPage(key: PageKey, token: string, page: ListPage): Promise<void>;
  /** After a commit, before the client is answered: forget cached absences and list pages the write changed. */
  recordsWritten(records: ReadonlyArray<Pick<NewRecord, 'id' | 'source' | 'type'>>): Promise<void>;
}
