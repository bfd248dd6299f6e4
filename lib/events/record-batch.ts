/**
 * The broker's size limit is not per message: `message.max.bytes` (a topic's `max.message.bytes`) bounds each
 * partition's record batch in a produce request, and kafkajs puts every message of one `send` for a partition
 * into one batch (tulios/kafkajs#1227, #949). So the relay sizes messages as Kafka's RecordBatch v2 encodes them
 * and plans its sends itself: per partition, batches under the limit, sent in claim order.
 */
import type { EventMessage } from './ports.ts';

/** DefaultRecordBatch.RECORD_BATCH_OVERHEAD: the v2 batch header with the log overhead (offset, length) in it. */
export const RECORD_BATCH_OVERHEAD = 61;
/** Kafka's default `message.max.bytes` (1 MiB + the 12-byte log overhead), assumed where the broker is not asked. */
export const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** Upper bounds of the per-record varints whose value we do not know when sizing: timestampDelta, offsetDelta. */
const MAX_VARLONG = 10;
const MAX_VARINT = 5;

/** Bytes of a zigzag varint holding the non-negative `value`. */
export function varintSize(value: number): number {
  let zigzag = value * 2;
  let size = 1;
  while (zigzag >= 0x80) {
    zigzag = Math.floor(zigzag / 0x80);
    size++;
  }
  return size;
}

const field = (bytes: number) => varintSize(bytes) + bytes;

/**
 * An upper bound of the bytes `message` takes inside a v2 record batch (attributes, timestamp and offset deltas,
 * key, value, headers, and the record's own length prefix). Exact but for the two deltas, counted at their maximum.
 */
export function recordSize(message: Omit<EventMessage, 'value'> & { readonly value: string | Uint8Array }): number {
  let body = 1 + MAX_VARLONG + MAX_VARINT;
  body += field(Buffer.byteLength(message.key));
  body += field(Buffer.byteLength(message.value));
  let headers = 0;
  let count = 0;
  for (const name in message.headers) {
    headers += field(Buffer.byteLength(name)) + field(Buffer.byteLength(message.headers[name] ?? ''));
    count++;
  }
  body += varintSize(count) + headers;
  return varintSize(body) + body;
}

export interface SizedMessage {
  /** Position in the publish call: claim (outbox id) order. */
  readonly index: number;
  readonly partition: number;
  /** `recordSize` of the message. */
  readonly bytes: number;
}

export interface ProducePlan {
  /**
   * Sends in order: wave k holds the k-th batch of every partition, so one `send` carries one batch per partition
   * (kafkajs sends one request per leader with one batch per partition), and a partition's batches go in order.
   */
  readonly waves: ReadonlyArray<readonly SizedMessage[]>;
  /** Messages that alone exceed the limit as a batch of their own. */
  readonly tooLarge: readonly SizedMessage[];
}

/** Splits `messages` (in claim order) into waves whose batch per partition stays within `limit` bytes. */
export function planProduce(messages: readonly SizedMessage[], limit: number): ProducePlan {
  const batchesByPartition = new Map<number, { batches: SizedMessage[][]; bytes: number }>();
  const tooLarge: SizedMessage[] = [];
  for (const message of messages) {
    if (RECORD_BATCH_OVERHEAD + message.bytes > limit) {
      tooLarge.push(message);
      continue;
    }
    let partition = batchesByPartition.get(message.partition);
    if (partition === undefined) {
      partition = { batches: [[]], bytes: RECORD_BATCH_OVERHEAD };
      batchesByPartition.set(message.partition, partition);
    }
    if (partition.bytes + message.bytes > limit) {
      partition.batches.push([]);
      partition.bytes = RECORD_BATCH_OVERHEAD;
    }
    partition.batches.at(-1)?.push(message);
    partition.bytes += message.bytes;
  }
  const waves: SizedMessage[][] = [];
  for (const { batches } of batchesByPartition.values()) {
    batches.forEach((batch, k) => {
      if (batch.length === 0) return;
      const wave = waves[k] ?? [];
      for (const message of batch) wave.push(message);
      waves[k] = wave;
    });
  }
  return { waves, tooLarge };
}
