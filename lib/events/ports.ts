/** What the outbox relay needs from storage and from the broker; `lib/db` and the kafkajs publisher implement them. */

/** One outbox row: the ready event of one committed record (its JSON text was built by PostgreSQL). */
export interface OutboxEntry {
  readonly id: string;
  readonly recordId: string;
  /** The event value, exactly as consumers receive it. */
  readonly event: string;
  /** traceparent of the write that created the record, when it was traced. */
  readonly trace: string | null;
}

export interface OutboxStore {
  /**
   * Claims up to `limit` rows (events) no other relay holds, hands them to `publish`, and deletes them only when it
   * resolves; a rejection releases them untouched. Resolves with the number of rows relayed.
   */
  relayBatch(limit: number, publish: (entries: readonly OutboxEntry[]) => Promise<void>): Promise<number>;
  /** Rows waiting and the age of the oldest, for lag metrics. */
  backlog(): Promise<{ readonly rows: number; readonly oldestAgeMs: number }>;
}

export interface EventMessage {
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface EventPublisher {
  /** Resolves once the broker acknowledged every message (acks=all). */
  publish(messages: readonly EventMessage[]): Promise<void>;
  /** Resolves when the broker answers a metadata request; lets an idle relay notice an outage (and the end of one). */
  check(): Promise<void>;
  close(): Promise<void>;
}
