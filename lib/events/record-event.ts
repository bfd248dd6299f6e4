import { formatUtcTimestamp } from '#lib/records';
import type { EventMessage, OutboxRecord } from './ports.ts';

/** Bumped on any incompatible change of the event value; consumers switch on the `event-version` header. */
export const RECORD_EVENT_VERSION = 1;
export const RECORD_CREATED = 'record.created';

/** The JSON value consumers receive; `record` is exactly what `GET /data/{id}` answers. */
export interface RecordCreatedEvent {
  readonly version: typeof RECORD_EVENT_VERSION;
  readonly event: typeof RECORD_CREATED;
  readonly record: {
    readonly id: string;
    readonly source: string;
    readonly type: string;
    readonly timestamp: string;
    readonly payload: unknown;
    readonly received_at: string;
  };
}

/**
 * One Kafka message per record, keyed by the record id: all events of a record land on one partition, and a
 * consumer dedupes the at-least-once stream by that key.
 */
export function toRecordMessage(record: OutboxRecord): EventMessage {
  const value: RecordCreatedEvent = {
    version: RECORD_EVENT_VERSION,
    event: RECORD_CREATED,
    record: {
      id: record.id,
      source: record.source,
      type: record.type,
      timestamp: formatUtcTimestamp(record.timestamp),
      payload: record.payload,
      received_at: formatUtcTimestamp(record.received_at),
    },
  };
  return {
    key: record.id,
    value: JSON.stringify(value),
    headers: {
      'content-type': 'application/json',
      'event-type': RECORD_CREATED,
      'event-version': String(RECORD_EVENT_VERSION),
    },
  };
}
