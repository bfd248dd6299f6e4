/**
 * The partition of a keyed message, exactly as Kafka's Java client (and kafkajs's default partitioner) chooses it:
 * murmur2 of the key's UTF-8 bytes, made positive, modulo the partition count. Other producers of the topic must
 * agree with us on it, so a record's events stay on one partition whoever writes them.
 *
 * Written on 32-bit integers (Math.imul): kafkajs computes the same hash through a 64-bit Long emulation, an
 * object per multiply, which was 1.5 % of a POST's CPU in the ingest profile (npm run bench:profile -- post-one).
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;

export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The last one to three bytes, folded in from the highest.
  const rest = length & 3;
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[tail] as number), M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of `key` among `partitions` (the Java client's `toPositive(murmur2(key)) % partitions`). */
export function partitionOfKey(key: string | Uint8Array, partitions: number): number {
  const bytes = typeof key === 'string' ? Buffer.from(key) : key;
  return (murmur2(bytes) & 0x7fffffff) % partitions;
}
