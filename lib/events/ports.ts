/** What the outbox relay needs from storage and from the broker; `lib/db` and the kafkajs publisher implement them. */

/** One outbox row: the ready event of one committed record (its JSON text was built by PostgreSQL). */
export interface OutboxEntry {
  readonly id: string;
  readonly recordId: string;
  /** The event value, exactly as consumers receive it. */
  readonly event: string;
  /** traceparent of the write that created the record, when it was traced. */
  readonly trace: string | null;
  /** When the row was committed (RFC 3339, UTC, microseconds): the record's received_at, the event's `ce_time`. */
  readonly createdAt: string;
}

/** An event the broker can never take (alone above its size limit): moved to `outbox_dead_letter`, not retried. */
export interface DeadLetter {
  readonly entry: OutboxEntry;
  /** Size of the event as a record batch of its own, which is what the broker's limit applies to. */
  readonly bytes: number;
  readonly reason: string;
}

/** What a relay round did with the entries it was handed. */
export interface RelayOutcome {
  /** Outbox ids the broker acknowledged (acks=all). */
  readonly acknowledged: readonly string[];
  readonly deadLetters: readonly DeadLetter[];
}

/**
 * A publish that failed after part of its entries were acknowledged: the store deletes those (and files the dead
 * letters) before it releases the rest, so that a failure late in a large claim re-sends only what is unsent.
 */
export class PartialRelayError extends Error {
  readonly outcome: RelayOutcome;

  constructor(outcome: RelayOutcome, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'PartialRelayError';
    this.outcome = outcome;
  }
}

/** How much one relay round may claim: rows, and bytes of event text (the claim stops at the event crossing it). */
export interface ClaimLimits {
  readonly rows: number;
  readonly bytes: number;
}

export interface RelayRound {
  /** Rows handed to `publish`. */
  readonly claimed: number;
  /** Whether the claim stopped at a limit (more is probably waiting) rather than at the end of the outbox. */
  readonly full: boolean;
  readonly published: number;
  readonly deadLettered: number;
}

export interface OutboxStore {
  /**
   * Claims, in outbox order, rows no other relay holds — up to `limits.rows`, and stopping once their event text
   * exceeds `limits.bytes` — hands them to `publish`, then deletes the acknowledged rows and moves the dead
   * letters to the dead-letter table in the same transaction. A rejection releases every row it does not name
   * (a `PartialRelayError` names the acknowledged ones, which are deleted all the same).
   */
  relayBatch(
    limits: ClaimLimits,
    publish: (entries: readonly OutboxEntry[]) => Promise<RelayOutcome>,
  ): Promise<RelayRound>;
  /** Rows waiting, the age of the oldest, and dead letters kept, for metrics. */
  backlog(): Promise<{ readonly rows: number; readonly oldestAgeMs: number; readonly deadLetters: number }>;
}

export interface EventMessage {
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** What a publish did: which messages the broker acknowledged, and which it can never take. */
export interface PublishResult {
  /** Indices (into the messages given) acknowledged by every in-sync replica. */
  readonly acknowledged: readonly number[];
  /** Indices of messages that alone exceed the broker's limit: not sent, never retried. */
  readonly tooLarge: ReadonlyArray<{ readonly index: number; readonly bytes: number; readonly limit: number }>;
}

/** Thrown by `publish` when it failed after some messages were acknowledged (`result` says which). */
export class PartialPublishError extends Error {
  readonly result: PublishResult;

  constructor(result: PublishResult, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'PartialPublishError';
    this.result = result;
  }
}

export interface PublishOptions {
  /** A cap below the broker's own limit on one partition's record batch (RELAY_MAX_REQUEST_BYTES). */
  readonly maxBatchBytes?: number | undefined;
}

export interface EventPublisher {
  /**
   * Publishes in order, split into produce requests whose record batch per partition stays under the broker's
   * limit; resolves once the broker acknowledged every message it can take (acks=all).
   */
  publish(messages: readonly EventMessage[], options?: PublishOptions): Promise<PublishResult>;
  /** Resolves when the broker answers a metadata request; lets an idle relay notice an outage (and the end of one). */
  check(): Promise<void>;
  close(): Promise<void>;
}
