/**
 * Our partitioner against kafkajs's default one (the Java client's murmur2), which other producers of the topic
 * use: the same partition for every key, or a record's events would be split across partitions.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from '@jest/globals';
import { Partitioners } from 'kafkajs';
import { murmur2, partitionOfKey } from '#lib/events';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

describe('partitionOfKey', () => {
  it('hashes every length of key exactly as kafkajs (the Java client) does', () => {
    for (let length = 0; length < 64; length++) {
      for (let n = 0; n < 20; n++) {
        const key = randomBytes(length);
        expect(murmur2(key)).toBe(kafkajsMurmur2(key));
      }
    }
  });

  it("chooses kafkajs's default partition for record ids, strings with non-ASCII text and several partition counts", () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const keys = [...Array.from({ length: 2000 }, () => randomUUID()), 'zürich-ß-東京', '', 'a', 'ab', 'abc'];
    for (const partitions of [1, 3, 12, 50]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        partitionErrorCode: 0,
      }));
      for (const key of keys) {
        expect(partitionOfKey(key, partitions)).toBe(
          kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } }),
        );
      }
    }
  });

  it('matches values published for the Java client', () => {
    // Kafka's own UtilsTest (murmur2 of "21" and "foobar") pins the hash across implementations.
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
  });
});
