/**
 * The relay's size plan against Kafka's own encoding: `recordSize` is compared with the bytes kafkajs's
 * RecordBatch v2 encoder (the one its producer sends) really writes, and `planProduce` keeps every partition's
 * batch under the limit, in claim order, and sets aside exactly the messages that cannot fit alone.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  durabilityFindings,
  type EventMessage,
  planProduce,
  RECORD_BATCH_OVERHEAD,
  recordSize,
  requiredTopicConfig,
  type SizedMessage,
  toRecordMessage,
  varintSize,
} from '#lib/events';

// kafkajs's protocol encoders (CommonJS, not part of its typed API): the bytes its producer puts on the wire.
const require = createRequire(import.meta.url);
type Encoded = { size(): number };
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
  RecordBatch: (batch: { records: unknown[] }) => Promise<Encoded>;
};
const Encoder = require('kafkajs/src/protocol/encoder') as { sizeOfVarInt(value: number): number };
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (record: {
  offsetDelta: number;
  timestampDelta: number;
  key: string;
  value: string;
  headers: Record<string, string>;
}) => Encoded;

/** The encoded size of `messages` as one record batch, exactly as kafkajs's produce v3+ request builds it. */
async function encodedBatchSize(messages: readonly EventMessage[]): Promise<number> {
  const records = messages.map((m, i) =>
    Record({ ...m, headers: { ...m.headers }, offsetDelta: i, timestampDelta: 0 }),
  );
  return (await RecordBatch({ records })).size();
}

const text = fc.string({ unit: 'binary', maxLength: 300 });
const message = fc.record({
  key: fc.uuid(),
  value: fc.oneof(text, fc.string({ minLength: 500, maxLength: 3000 })),
  headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ maxLength: 60 }), { maxKeys: 5 }),
});

describe('recordSize', () => {
  it('varintSize counts zigzag varints as Kafka encodes them', () => {
    const values = [0, 1, 63, 64, 8191, 8192, 2 ** 20, 2 ** 27, 2 ** 30];
    expect(values.map(varintSize)).toEqual(values.map((v) => Encoder.sizeOfVarInt(v)));
    expect(values.map(varintSize)).toEqual([1, 1, 1, 2, 2, 3, 4, 5, 5]);
  });

  it('is an upper bound of the encoded batch, and at most 14 bytes a record above it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), async (messages) => {
        const encoded = await encodedBatchSize(messages);
        const planned = RECORD_BATCH_OVERHEAD + messages.reduce((sum, m) => sum + recordSize(m), 0);
        expect(planned).toBeGreaterThanOrEqual(encoded);
        expect(planned - encoded).toBeLessThanOrEqual(14 * messages.length);
      }),
      { numRuns: 300 },
    );
  });

  it('sizes a real event of ~900 bytes, CloudEvents and trace headers included, within a few bytes', async () => {
    // The message exactly as the relay builds it (toRecordMessage) plus the traceparent it adds: the ce_* headers
    // weigh ~180 bytes a message, which the plan must count or a full batch would exceed the broker's limit.
    const id = '01a21824-9f19-7e3f-b862-6e991b99e2e5';
    const built = toRecordMessage({
      id: '1',
      recordId: id,
      event: JSON.stringify({
        version: 1,
        event: 'record.created',
        record: { id, payload: { text: 'x'.repeat(900) } },
      }),
      trace: null,
      createdAt: '2026-12-03T07:05:12.418263Z',
    });
    const event: EventMessage = {
      ...built,
      headers: { ...built.headers, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    };
    expect(Object.keys(event.headers)).toEqual(
      expect.arrayContaining(['ce_specversion', 'ce_id', 'ce_source', 'ce_type', 'ce_time', 'content-type']),
    );
    const encoded = (await encodedBatchSize([event])) - RECORD_BATCH_OVERHEAD;
    const bare = (await encodedBatchSize([{ ...event, headers: {} }])) - RECORD_BATCH_OVERHEAD;
    expect(encoded - bare).toBeGreaterThan(200);
    expect(recordSize(event) - encoded).toBeGreaterThanOrEqual(0);
    expect(recordSize(event) - encoded).toBeLessThanOrEqual(14);
  });
});

describe('planProduce', () => {
  const sized = fc.array(
    fc.record({ partition: fc.integer({ min: 0, max: 5 }), bytes: fc.integer({ min: 10, max: 5_000 }) }),
    { maxLength: 300 },
  );

  it('keeps every batch within the limit, each partition in order, and sets aside what cannot fit alone', () => {
    fc.assert(
      fc.property(sized, fc.integer({ min: 100, max: 20_000 }), (items, limit) => {
        const messages: SizedMessage[] = items.map((m, index) => ({ ...m, index }));
        const { waves, tooLarge } = planProduce(messages, limit);
        // Every message exactly once, in a wave or set aside, and set aside exactly when alone it exceeds the limit.
        const placed = [...waves.flat(), ...tooLarge].map((m) => m.index).sort((a, b) => a - b);
        expect(placed).toEqual(messages.map((m) => m.index));
        expect(tooLarge.map((m) => m.index)).toEqual(
          messages.filter((m) => RECORD_BATCH_OVERHEAD + m.bytes > limit).map((m) => m.index),
        );
        for (const wave of waves) {
          const perPartition = new Map<number, number>();
          for (const m of wave)
            perPartition.set(m.partition, (perPartition.get(m.partition) ?? RECORD_BATCH_OVERHEAD) + m.bytes);
          for (const bytes of perPartition.values()) expect(bytes).toBeLessThanOrEqual(limit);
        }
        // A partition's messages leave in claim order: waves are sent one after the other.
        for (let p = 0; p <= 5; p++) {
          const order = waves
            .flat()
            .filter((m) => m.partition === p)
            .map((m) => m.index);
          expect(order).toEqual([...order].sort((a, b) => a - b));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('fills batches: a new one starts only when the next message would not fit', () => {
    const messages = Array.from({ length: 10 }, (_, index) => ({ index, partition: 0, bytes: 100 }));
    const { waves } = planProduce(messages, RECORD_BATCH_OVERHEAD + 300);
    expect(waves.map((w) => w.length)).toEqual([3, 3, 3, 1]);
  });
});

describe('topic durability', () => {
  it('creates topics with min.insync.replicas=2 from replication 3 on, never with unclean leader election', () => {
    expect(requiredTopicConfig(3)).toEqual({ 'min.insync.replicas': '2', 'unclean.leader.election.enable': 'false' });
    expect(requiredTopicConfig(1)).toEqual({ 'min.insync.replicas': '1', 'unclean.leader.election.enable': 'false' });
  });

  it('says on a single-replica topic what it would require, as information, not a failure', () => {
    const findings = durabilityFindings('records', 1, {
      replicationFactor: 1,
      minInsyncReplicas: 1,
      uncleanLeaderElection: false,
    });
    expect(findings).toHaveLength(1);
    expect(findings[0]?.level).toBe('info');
    expect(findings[0]?.message).toContain('min.insync.replicas=2 and unclean.leader.election.enable=false');
  });

  it('warns about each setting that differs on a replicated topic, and is silent when all are right', () => {
    const durable = { replicationFactor: 3, minInsyncReplicas: 2, uncleanLeaderElection: false };
    expect(durabilityFindings('records', 3, durable)).toEqual([]);
    const weak = durabilityFindings('records', 3, { ...durable, minInsyncReplicas: 1, uncleanLeaderElection: true });
    expect(weak.map((f) => f.level)).toEqual(['warn', 'warn']);
    expect(weak[0]?.message).toContain('min.insync.replicas=1');
    expect(weak[1]?.message).toContain('unclean.leader.election.enable=true');
    expect(durabilityFindings('records', 1, durable).map((f) => f.message)).toEqual([
      expect.stringContaining('replication factor 3, KAFKA_TOPIC_REPLICATION says 1'),
    ]);
    expect(durabilityFindings('records', 3, { ...durable, minInsyncReplicas: undefined })[0]?.message).toContain(
      'unverified',
    );
  });
});
