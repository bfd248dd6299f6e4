import Joi from 'joi';
import { type StoredRecord, storedRecordSchema } from '#lib/records';
import type { EventMessage, OutboxEntry } from './ports.ts';

/** Bumped on any incompatible change of the event value; consumers switch on the `event-version` header. */
export const RECORD_EVENT_VERSION = 1;
export const RECORD_CREATED = 'record.created';

/**
 * The CloudEvents attributes every record event carries (CloudEvents 1.0, Kafka protocol binding, binary content
 * mode: attributes in `ce_*` headers, the data as the message value). docs/events.md is the consumer's reference.
 */
export const CLOUDEVENTS_SPEC_VERSION = '1.0';
/** `source`: names this service's record stream; with the record id as `id`, (source, id) is unique per record. */
export const RECORD_EVENT_SOURCE = 'https://data-service.dev/records';
/** `type`: reverse-DNS and versioned; a new version is a new type, so consumers can take both during a change. */
export const RECORD_CREATED_TYPE = `dev.data-service.record.created.v${RECORD_EVENT_VERSION}`;

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
  .description(
    `The data of each message on the records topic: a CloudEvent (binary content mode, ce_type ${RECORD_CREATED_TYPE}) whose ce_id and key are the record id.`,
  );

export interface RecordCreatedEvent {
  readonly version: typeof RECORD_EVENT_VERSION;
  readonly event: typeof RECORD_CREATED;
  readonly record: StoredRecord;
}

/**
 * One Kafka message per record, keyed by the record id: all events of a record land on one partition, and a
 * consumer dedupes the at-least-once stream by that key (or by `ce_id`, the same id). The value is sent as
 * PostgreSQL wrote it; the headers come from the outbox row's columns, so nothing is parsed or serialised here,
 * and a re-delivery of a row carries the same attributes. `event-type`/`event-version` stay for consumers written
 * before the CloudEvents headers (docs/events.md).
 */
export function toRecordMessage(entry: OutboxEntry): EventMessage {
  return {
    key: entry.recordId,
    value: entry.event,
    headers: {
      ce_specversion: CLOUDEVENTS_SPEC_VERSION,
      ce_id: entry.recordId,
      ce_source: RECORD_EVENT_SOURCE,
      ce_type: RECORD_CREATED_TYPE,
      ce_time: entry.createdAt,
      'content-type': 'application/json',
      'event-type': RECORD_CREATED,
      'event-version': String(RECORD_EVENT_VERSION),
    },
  };
}
