export { createKafkaClient, createKafkaPublisher, ensureTopic } from './kafka-publisher.ts';
export { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions, type RelayStatus } from './outbox-relay.ts';
export type { EventMessage, EventPublisher, OutboxEntry, OutboxStore } from './ports.ts';
export {
  RECORD_CREATED,
  RECORD_EVENT_VERSION,
  type RecordCreatedEvent,
  recordEventSchema,
  toRecordMessage,
} from './record-event.ts';
