/**
 * The interfaces the domain needs from the outside world. `lib/db` and `lib/cache` implement them; the domain
 * never imports a database, cache or broker client.
 */
import type { IngestResult, ListedRecord, ListFilter, ListQuery, NewRecord, WriteResult } from './types.ts';

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

/**
 * What lets a write be given up: its client was answered 503 at its deadline, or left. A writer given one asks
 * `claimCommit()` right before it commits, and rolls back when the answer is false; once it was true the write is
 * final and its caller waits for the outcome, whatever the signal does next (see lib/records/write-deadline.ts).
 */
export interface WriteGuard {
  /** Aborts when the write should be given up; a write still queued is then dropped. */
  readonly signal?: AbortSignal;
  /** False when the write was given up (roll back); true makes it final. Called once, right before COMMIT. */
  claimCommit(): boolean;
}

export interface RecordWriter {
  /** Stores the records atomically (all or none); ids already stored come back as `duplicate`. */
  insert(records: readonly NewRecord[], guard?: WriteGuard): Promise<readonly WriteResult[]>;
  /** As `insert`, and remembers the result under the key in the same transaction. */
  insertIdempotent(
    records: readonly NewRecord[],
    claim: IdempotencyClaim,
    guard?: WriteGuard,
  ): Promise<IdempotentWriteOutcome>;
}

export interface RecordReader {
  /** The record's JSON text exactly as it is served, and its source (for access checks), or undefined. */
  findById(id: string): Promise<{ readonly json: string; readonly source: string } | undefined>;
  /**
   * Newest first on `(timestamp, id)`; at most `limit` rows strictly after `after`. With `maxBytes` it may leave
   * out the rows after the first one that no longer fits in `maxBytes` (see `pageOf`); never that row itself, by
   * which the caller learns that more follow.
   */
  list(query: ListQuery): Promise<readonly ListedRecord[]>;
}

/** Where an archived record went: the UTC day of its archive, asked only when a by-id read found nothing. */
export interface ArchiveLocator {
  dayOf(id: string): Promise<string | undefined>;
}

/** A ready representation of one record: the body to send and its validator. */
export interface RecordDocument {
  readonly json: string;
  readonly etag: string;
  /** The record's source: whoever serves the document checks that the caller may read it. */
  readonly source: string;
}

/** Where the query side reads one record from: the cache chain in front of a `RecordReader` (lib/cache). */
export interface RecordSource {
  get(id: string): Promise<RecordDocument | undefined>;
}

export interface PageKey {
  readonly filter: ListFilter;
  readonly limit: number;
  readonly cursor: string | undefined;
  /** The caller's id: a page carries a cursor bound to it ('' without authentication). */
  readonly caller: string;
}

/** Where the query side reads one page from: the body of a `GET /data` answer and its next cursor. */
export interface PageSource {
  get(key: PageKey, compute: () => Promise<PageDocument>): Promise<PageDocument>;
}

export interface PageDocument {
  readonly json: string;
  readonly nextCursor: string | null;
}

/** Told, after a commit and before any client is answered, which records it created (cache invalidation). */
export interface WriteListener {
  recordsWritten(records: ReadonlyArray<Pick<NewRecord, 'id' | 'source' | 'type'>>): Promise<void>;
}

/**
 * Who is asking, as far as the domain cares: an identity for per-caller state (idempotency keys, cursors) and
 * which sources it may write and read. lib/auth builds it from a verified token.
 */
export interface Caller {
  /** Stable per caller (the token's `sub`); empty for the anonymous caller of a deployment without auth. */
  readonly id: string;
  mayWrite(source: string): boolean;
  mayRead(source: string): boolean;
  /** Whether it may read every source: only then may it list without naming a `source`. */
  readonly readsEverySource: boolean;
}

/** Source of the current time, injected so that tests can pin it. */
export type Clock = () => number;
