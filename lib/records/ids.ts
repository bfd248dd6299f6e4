import { randomFillSync } from 'node:crypto';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for any RFC 9562 UUID in its canonical 8-4-4-4-12 hex form, any version, either case. */
export const isUuid = (value: string): boolean => UUID_RE.test(value);

// Random bytes are drawn 4 KiB at a time (one getrandom call per ~400 ids instead of one per id).
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then randomness. Server-assigned ids are time-ordered
 * so that inserts into the id index land on its right edge instead of on random pages of a billion-row B-tree.
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolOffset + 10 > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const r = poolOffset;
  poolOffset += 10;
  // 48-bit milliseconds as hex: exact in a double, no BigInt needed.
  const ms = now.toString(16).padStart(12, '0');
  const b = (i: number) => HEX[POOL[r + i] ?? 0] ?? '00';
  const version = HEX[((POOL[r] ?? 0) & 0x0f) | 0x70] ?? '70';
  const variant = HEX[((POOL[r + 2] ?? 0) & 0x3f) | 0x80] ?? '80';
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-${version}${b(1)}-${variant}${b(3)}-${b(4)}${b(5)}${b(6)}${b(7)}${b(8)}${b(9)}`;
}
