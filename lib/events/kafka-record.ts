/**
 * One record of a Kafka record batch (message format v2: length, attributes, timestamp and offset deltas, key,
 * value, headers; all lengths as zigzag varints), written into one buffer of its exact size.
 *
 * kafkajs builds each record with an `Encoder` and one more per header: every one a zero-filled 512-byte
 * allocation, grown by copying, and every varint a `Buffer.from([...])` of its own; the 64-bit timestamp delta goes
 * through its Long emulation. With eight CloudEvents headers a message, that was kafkajs's largest share (30 % of the
 * ingest's CPU on 100-record POSTs in `npm run bench:profile -- post-batch-100`, and much of the GC's 16 %). The
 * bundles swap kafkajs's module for this one (esbuild.config.mjs); a unit test holds the bytes equal to kafkajs's.
 *
 * What kafkajs expects back is an Encoder as far as its batch encoder looks: a `buf` that is a Buffer, and a
 * `buffer` with the bytes.
 */
type Bytes = string | Buffer | null | undefined;

export interface RecordInput {
  readonly offsetDelta?: number;
  readonly timestampDelta?: number;
  readonly key?: Bytes;
  readonly value?: Bytes;
  readonly headers?: Readonly<Record<string, Bytes | readonly Bytes[]>>;
}

export interface EncodedRecord {
  readonly buf: Buffer;
  readonly buffer: Buffer;
}

/** Zigzag of a 32-bit int, as kafkajs's writeVarInt computes it (lengths and the offset delta). */
const zigzag32 = (value: number): number => ((value << 1) ^ (value >> 31)) >>> 0;
/** Zigzag of a 64-bit value held exactly in a double (the timestamp delta, |delta| < 2^52 ms). */
const zigzag64 = (value: number): number => (value >= 0 ? value * 2 : -value * 2 - 1);

function unsignedSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

function writeUnsigned(buf: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    buf[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  buf[offset++] = value;
  return offset;
}

/**
 * The UTF-8 bytes of short texts met before: header names, and the header values that are the same in every event
 * (spec version, source, type, content type). Bounded: once full, new texts are encoded each time.
 */
const ENCODED_MAX_ENTRIES = 256;
const ENCODED_MAX_CHARS = 64;
const encoded = new Map<string, Buffer>();
function bytesOf(text: string): Buffer | string {
  const known = encoded.get(text);
  if (known !== undefined) return known;
  if (text.length > ENCODED_MAX_CHARS || encoded.size >= ENCODED_MAX_ENTRIES) return text;
  const bytes = Buffer.from(text, 'utf8');
  encoded.set(text, bytes);
  return bytes;
}

const byteLength = (value: Bytes): number =>
  value == null ? -1 : Buffer.isBuffer(value) ? value.length : Buffer.byteLength(value, 'utf8');

/** Size of a length-prefixed field whose content is `length` bytes (-1: null). */
const fieldSize = (length: number): number => unsignedSize(zigzag32(length)) + Math.max(length, 0);

function writeField(buf: Buffer, offset: number, value: Bytes, length: number): number {
  offset = writeUnsigned(buf, offset, zigzag32(length));
  if (value == null) return offset;
  if (Buffer.isBuffer(value)) return offset + value.copy(buf, offset);
  return offset + buf.write(value, offset, length, 'utf8');
}

export function encodeRecord({
  offsetDelta = 0,
  timestampDelta = 0,
  key,
  value,
  headers = {},
}: RecordInput): EncodedRecord {
  // Flattened as kafkajs does: an array value is one header per element, under the same key.
  const headerKeys: Array<string | Buffer> = [];
  const headerValues: Bytes[] = [];
  for (const name of Object.keys(headers)) {
    const entry = headers[name];
    const key = bytesOf(name);
    if (Array.isArray(entry)) {
      for (const element of entry as readonly Bytes[]) {
        headerKeys.push(key);
        headerValues.push(element);
      }
    } else {
      headerKeys.push(key);
      headerValues.push(typeof entry === 'string' ? bytesOf(entry) : (entry as Bytes));
    }
  }
  // kafkajs refuses what BigInt cannot take (a fraction, Infinity); here such a delta would loop or be rounded.
  if (!Number.isSafeInteger(timestampDelta) || !Number.isSafeInteger(offsetDelta)) {
    throw new RangeError(`record deltas must be integers (timestamp ${timestampDelta}, offset ${offsetDelta})`);
  }
  const keyLength = byteLength(key);
  const valueLength = byteLength(value);
  const timestamp = zigzag64(timestampDelta);
  const offset = zigzag32(offsetDelta);
  let body =
    1 +
    unsignedSize(timestamp) +
    unsignedSize(offset) +
    fieldSize(keyLength) +
    fieldSize(valueLength) +
    unsignedSize(zigzag32(headerKeys.length));
  const lengths = new Array<number>(headerKeys.length * 2);
  for (let i = 0; i < headerKeys.length; i++) {
    const k = byteLength(headerKeys[i]);
    const v = byteLength(headerValues[i]);
    lengths[2 * i] = k;
    lengths[2 * i + 1] = v;
    body += fieldSize(k) + fieldSize(v);
  }
  const bodyLength = zigzag32(body);
  // Below 4 KiB allocUnsafe slices Node's shared pool: no allocation of its own, no zero fill (every byte is written).
  const buf = Buffer.allocUnsafe(unsignedSize(bodyLength) + body);
  let at = writeUnsigned(buf, 0, bodyLength);
  buf[at++] = 0; // attributes: none are used in a record
  at = writeUnsigned(buf, at, timestamp);
  at = writeUnsigned(buf, at, offset);
  at = writeField(buf, at, key, keyLength);
  at = writeField(buf, at, value, valueLength);
  at = writeUnsigned(buf, at, zigzag32(headerKeys.length));
  for (let i = 0; i < headerKeys.length; i++) {
    at = writeField(buf, at, headerKeys[i], lengths[2 * i] as number);
    at = writeField(buf, at, headerValues[i], lengths[2 * i + 1] as number);
  }
  return { buf, buffer: buf };
}
