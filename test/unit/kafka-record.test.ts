/**
 * The bundle's record encoder and partition grouping (lib/events/kafka-record.ts, partition-groups.ts) against
 * kafkajs's own modules, which they replace in dist/ (esbuild.config.mjs): the same bytes, the same groups.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from '@jest/globals';
import { encodeRecord, groupMessagesPerPartition, type RecordInput } from '#lib/events';

const require = createRequire(import.meta.url);
const kafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (input: RecordInput) => {
  buffer: Buffer;
};
const kafkajsGroup = require('kafkajs/src/producer/groupMessagesPerPartition.js') as typeof groupMessagesPerPartition;

const CLOUDEVENTS = {
  ce_specversion: '1.0',
  ce_id: '0192f0a4-9f3e-7c1a-8d2e-5b6a7c8d9e0f',
  ce_source: '/data-service/records',
  ce_type: 'com.example.record.created.v1',
  ce_time: '2026-12-03T16:00:00.000Z',
  ce_subject: 'sensor-7',
  content_type: 'application/json',
  ce_dataschema: 'https://example.com/schemas/record-created-v1.json',
};

describe('encodeRecord', () => {
  const cases: Array<[string, RecordInput]> = [
    [
      'an event as the relay sends it',
      { key: 'sensor-7', value: '{"id":"x","payload":{"n":1}}', headers: CLOUDEVENTS },
    ],
    ['no key, no value, no headers', {}],
    ['a null key and value', { key: null, value: null }],
    ['Buffers', { key: randomBytes(16), value: randomBytes(300), headers: { h: randomBytes(5) } }],
    ['multibyte text', { key: 'clé-ü-日本', value: '{"π":"€ 𝄞"}', headers: { schlüssel: 'wërt' } }],
    ['a header given as an array', { key: 'k', value: 'v', headers: { trace: ['a', 'b', 'c'], other: 'd' } }],
    ['empty strings', { key: '', value: '', headers: { '': '' } }],
  ];
  it.each(cases)('writes the bytes kafkajs writes: %s', (_, input) => {
    expect(encodeRecord(input).buffer.equals(kafkajsRecord(input).buffer)).toBe(true);
  });

  it('writes the deltas and lengths as kafkajs does across the varint steps', () => {
    const deltas = [0, 1, 63, 64, 127, 128, 8191, 8192, 1_048_575, 1_048_576, 2 ** 31 - 1, -1, -64, -65, -8193];
    const timestamps = [...deltas, 2 ** 35, 86_400_000 * 365 * 50, -(2 ** 40)];
    for (const offsetDelta of deltas) {
      const input = { offsetDelta, timestampDelta: 0, key: 'k', value: 'v' };
      expect(encodeRecord(input).buffer.equals(kafkajsRecord(input).buffer)).toBe(true);
    }
    for (const timestampDelta of timestamps) {
      const input = { offsetDelta: 3, timestampDelta, key: 'k', value: 'v' };
      expect(encodeRecord(input).buffer.equals(kafkajsRecord(input).buffer)).toBe(true);
    }
    for (const size of [0, 63, 64, 8191, 8192, 70_000, 2_100_000]) {
      const input = { key: 'k', value: 'x'.repeat(size), headers: CLOUDEVENTS };
      expect(encodeRecord(input).buffer.equals(kafkajsRecord(input).buffer)).toBe(true);
    }
  });

  it('writes the same bytes once its cache of encoded header texts is full (varying ids and times, long texts)', () => {
    for (let i = 0; i < 400; i++) {
      const input = {
        key: `k${i}`,
        value: `{"n":${i}}`,
        headers: {
          ...CLOUDEVENTS,
          ce_id: `id-${i}-é`,
          ce_time: new Date(i * 1000).toISOString(),
          long: 'x'.repeat(65 + i),
        },
      };
      expect(encodeRecord(input).buffer.equals(kafkajsRecord(input).buffer)).toBe(true);
    }
  });

  it('refuses a delta that is not an integer, as kafkajs does, instead of looping or rounding', () => {
    for (const timestampDelta of [1.5, Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(() => encodeRecord({ timestampDelta, key: 'k', value: 'v' })).toThrow(RangeError);
    }
    expect(() => encodeRecord({ offsetDelta: 0.5, key: 'k', value: 'v' })).toThrow(RangeError);
  });

  it('hands kafkajs an Encoder as far as its batch encoder looks: a Buffer in buf, the bytes in buffer', () => {
    const record = encodeRecord({ key: 'k', value: 'v' });
    expect(Buffer.isBuffer(record.buf)).toBe(true);
    expect(record.buffer).toBe(record.buf);
  });
});

describe('groupMessagesPerPartition', () => {
  it("groups as kafkajs's does, keeping each partition's order", () => {
    const messages = Array.from({ length: 500 }, (_, i) => ({
      key: `k${i}`,
      value: String(i),
      partition: (i * 7) % 5,
    }));
    const input = {
      topic: 't',
      partitionMetadata: [0, 1, 2, 3, 4],
      messages,
      partitioner: ({ message }: { message: (typeof messages)[number] }) => message.partition,
    };
    expect(groupMessagesPerPartition(input)).toEqual(kafkajsGroup(input));
    expect(groupMessagesPerPartition({ ...input, partitionMetadata: [] })).toEqual({});
  });
});
