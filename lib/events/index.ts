export { crc32c } from './crc32c.ts';
export {
  createKafkaClient,
  createKafkaPublisher,
  DURABLE_REPLICATION,
  durabilityFindings,
  ensureTopic,
  type KafkaPublisherStatus,
  prepareTopic,
  REQUIRED_MIN_INSYNC_REPLICAS,
  readTopicState,
  requiredTopicConfig,
  type TopicDurability,
  type TopicFinding,
  type TopicState,
} from './kafka-publisher.ts';
export { type EncodedRecord, encodeRecord, type RecordInput } from './kafka-record.ts';
export { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions, type RelayStatus } from './outbox-relay.ts';
export { groupMessagesPerPartition } from './partition-groups.ts';
export { murmur2, partitionOfKey } from './partitioner.ts';
export {
  type ClaimLimits,
  type DeadLetter,
  type EventMessage,
  type EventPublisher,
  type OutboxEntry,
  type OutboxStore,
  PartialPublishError,
  PartialRelayError,
  type PublishOptions,
  type PublishResult,
  type RelayOutcome,
  type RelayRound,
} from './ports.ts';
export {
  KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
  planProduce,
  RECORD_BATCH_OVERHEAD,
  recordSize,
  type SizedMessage,
  varintSize,
} from './record-batch.ts';
export {
  CLOUDEVENTS_SPEC_VERSION,
  RECORD_CREATED,
  RECORD_CREATED_TYPE,
  RECORD_EVENT_SOURCE,
  RECORD_EVENT_VERSION,
  type RecordCreatedEvent,
  recordEventSchema,
  toRecordMessage,
} from './record-event.ts';
