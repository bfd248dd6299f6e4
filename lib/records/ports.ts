/**
 * The interfaces the domain needs from the outside world. `lib/db` implements them; the domain never imports
 * a database, cache or broker client.
 */
import type { IngestResult, ListQuery, NewRecord, StoredRecord, WriteResult } from './types.ts';

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
