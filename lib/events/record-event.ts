import Joi from 'joi';
import { type StoredRecord, storedRecordSchema } from '#lib/records';
import type { EventMessage, OutboxEntry } from './ports.ts';

/** Bumped on any incompatible change of the event value; consumers switch on the `event-version` header. */
export const RECORD_EVENT_VERSION = 1;
export const RECORD_CREATED = 'record.created';

/**
 * The value of each Kafka message, declared once: its JSON Schema is published in the OpenAPI document
 * (components.schemas.RecordCreatedEvent). PostgreSQL writes the text (migration 0004, `ds_record_event_json`);
 * `record` is exactly what `GET /data/{id}` answers, and a test holds the two equal.
 */
export const recordEventSchema = Joi.object({
  version: Joi.number().integer().valid(RECORD_EVENT_VERSION).required(),
  event: Joi.string().valid(RECORD_CREATED).required(),
  record: storedRecordSchema.required(),
})
  .unknown(false)
  .id('RecordCreatedEvent')
  .description('The value of each message on the records topic; the key is the record id.');

export interface RecordCreatedEvent {
  readonly version: typeof RECORD_EVENT_VERSION;
  readonly event: typeof RECORD_CREATED;
  readonly record: StoredRecord;
}

/**
 * One Kafka message per record, keyed by the record id: all events of a record land on one partition, and a
 * consumer dedupes the at-least-once stream by that key. The value is sent as PostgreSQL wrote it.
 */
export function toRecordMessage(entry: OutboxEntry): EventMessage {
  return {
    key: entry.recordId,
    value: entry.event,
    headers: {
      'content-type': 'application/json',
      'event-type': RECORD_CREATED,
      'event-version': String(RECORD_EVENT_VERSION),
    },
  };
}
