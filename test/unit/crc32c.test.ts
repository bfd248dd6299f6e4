/** The bundle's CRC-32C (lib/events/crc32c.ts) against kafkajs's own, which it replaces in dist/ (esbuild.config.mjs). */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from '@jest/globals';
import { crc32c } from '#lib/events';

const require = createRequire(import.meta.url);
const kafkajsCrc32c = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (data: Buffer) => number;

describe('crc32c', () => {
  it('gives the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it("equals kafkajs's CRC-32C on every length around the 8-byte steps and on record-batch sizes", () => {
    const lengths = [...Array.from({ length: 80 }, (_, i) => i), 1000, 4093, 65_536, 1_048_583];
    for (const length of lengths) {
      const data = randomBytes(length);
      expect(crc32c(data)).toBe(kafkajsCrc32c(data));
      // Also at an odd offset into a larger buffer, as the encoder hands over slices.
      const slice = randomBytes(length + 3).subarray(3);
      expect(crc32c(slice)).toBe(kafkajsCrc32c(slice));
    }
  });
});
