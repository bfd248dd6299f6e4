/**
 * `npm run bench:validate`: what checking one POST body costs, in CPU µs of this process: the ingest validator
 * (joi and the one walk of lib/records/schema.ts) on 100-record batches as the bench's post-batch-100 sends them
 * (client ids, no timestamps, a flat payload) and as a typical client does (timestamps with an offset, a nested
 * payload). BENCH_VALIDATE_ITERATIONS bodies each, after a warm-up of a tenth of that.
 */
import { randomUUID } from 'node:crypto';
import { createRecordValidator } from '#lib/records';
import { helpFromHeader } from '../help.ts';
import { intEnv } from './lifecycle.ts';

helpFromHeader(import.meta.url);

const N = intEnv('BENCH_VALIDATE_ITERATIONS', 2_000);
const validator = createRecordValidator({
  maxPastMs: 30 * 86_400_000,
  maxFutureMs: 3_600_000,
  payloadMaxBytes: 65_536,
  payloadMaxDepth: 16,
  maxBatchRecords: 1_000,
});
const at = new Date(Date.now() - 60_000).toISOString().replace('Z', '+00:00');
const batches = {
  'as the bench posts': Array.from({ length: 100 }, (_, i) => ({
    id: randomUUID(),
    source: 'bench-batch',
    type: 'reading',
    payload: { seq: i, unit: 'C', value: 21.5 },
  })),
  'timestamped, nested': Array.from({ length: 100 }, (_, i) => ({
    source: 'sensor-1',
    type: 'reading',
    timestamp: at,
    payload: { seq: i, unit: 'C', value: 21.5, tags: ['a', 'b'], nested: { x: 1, y: 'z' } },
  })),
};
for (const [name, records] of Object.entries(batches)) {
  const body = { records };
  for (let i = 0; i < N / 10; i++) validator.validateIngestBody(body);
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) validator.validateIngestBody(body);
  const used = process.cpuUsage(before);
  const us = (used.user + used.system) / N;
  process.stdout.write(`${name}: ${us.toFixed(0)} µs per 100-record body (${(us / 100).toFixed(1)} µs a record)\n`);
}
