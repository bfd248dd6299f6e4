/**
 * One archived row, as PostgreSQL hands it out and as the Parquet files hold it, and the checksum both sides
 * compute over it. The checksum is order-independent (a sum of per-row hashes), so PostgreSQL computes it in
 * one aggregate over a partition while the archiver and the verifier compute it while they stream rows: no side
 * has to hold or sort a whole day.
 */
import { createHash } from 'node:crypto';

/** A record as it travels through the archive: times as integer microseconds, the payload as PostgreSQL's text. */
export interface ArchivedRow {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /** Microseconds since the epoch: timestamptz's own precision, which a JS Date would cut to milliseconds. */
  readonly timestampUs: bigint;
  /** `payload::text` (jsonb's canonical text), so a restore gives PostgreSQL back exactly what it had. */
  readonly payload: string;
  readonly receivedAtUs: bigint;
}

/** The figures that identify a set of rows: count, id range and checksum. */
export interface RowFigures {
  rows: number;
  minId: string | undefined;
  maxId: string | undefined;
  /** Sum of the rows' hashes, as a decimal string (it outgrows 64 bits). */
  checksum: string;
}

const SEP = '\u001f';

// extract(epoch …) is numeric (exact) since PostgreSQL 14; int8 keeps every microsecond.
const microsOf = (column: string) => `(extract(epoch FROM ${column}) * 1000000)::int8`;

/** The select list of an archived row (int8 arrives from node-pg as a string, turned into a bigint by `rowFrom`). */
export const ROW_SELECT = `r.id::text AS id, r.source, r.type, ${microsOf('r."timestamp"')} AS ts_us,
  r.payload::text AS payload, ${microsOf('r.received_at')} AS received_us`;

/** The same text `rowText` builds, in SQL, for the partition-side checksum. */
const ROW_TEXT_SQL = `r.id::text || chr(31) || r.source || chr(31) || r.type || chr(31) || ${microsOf('r."timestamp"')}::text
  || chr(31) || r.payload::text || chr(31) || ${microsOf('r.received_at')}::text`;

/**
 * Count, id range and checksum of a table of records in one scan. Ids compare as text in the C collation, which
 * orders canonical UUID text exactly as uuid's own ordering does (and as JS string comparison does).
 */
export const figuresSql = (table: string, where = 'TRUE'): string => `
  SELECT count(*)::int8::text AS rows, min(r.id::text COLLATE "C") AS min_id, max(r.id::text COLLATE "C") AS max_id,
    coalesce(sum(('x' || left(md5(${ROW_TEXT_SQL}), 16))::bit(64)::int8::numeric), 0)::text AS checksum
  FROM ${table} r WHERE ${where}`;

export function figuresFrom(row: Record<string, unknown> | undefined): RowFigures {
  return {
    rows: Number(row?.rows ?? 0),
    minId: row?.min_id === null || row?.min_id === undefined ? undefined : String(row.min_id),
    maxId: row?.max_id === null || row?.max_id === undefined ? undefined : String(row.max_id),
    checksum: String(row?.checksum ?? '0'),
  };
}

export function rowFrom(row: Record<string, unknown>): ArchivedRow {
  return {
    id: String(row.id),
    source: String(row.source),
    type: String(row.type),
    timestampUs: BigInt(String(row.ts_us)),
    payload: String(row.payload),
    receivedAtUs: BigInt(String(row.received_us)),
  };
}

const rowText = (r: ArchivedRow): string =>
  `${r.id}${SEP}${r.source}${SEP}${r.type}${SEP}${r.timestampUs}${SEP}${r.payload}${SEP}${r.receivedAtUs}`;

/** The first 64 bits of md5(row text), signed big-endian: what PostgreSQL's `('x' || …)::bit(64)::int8` gives. */
export const rowHash = (r: ArchivedRow): bigint => createHash('md5').update(rowText(r)).digest().readBigInt64BE(0);

/** Accumulates `RowFigures` over streamed rows. */
export class FiguresAccumulator {
  private rows = 0;
  private sum = 0n;
  private min: string | undefined;
  private max: string | undefined;

  add(row: ArchivedRow): void {
    this.rows++;
    this.sum += rowHash(row);
    if (this.min === undefined || row.id < this.min) this.min = row.id;
    if (this.max === undefined || row.id > this.max) this.max = row.id;
  }

  figures(): RowFigures {
    return { rows: this.rows, minId: this.min, maxId: this.max, checksum: this.sum.toString() };
  }
}

export const sameFigures = (a: RowFigures, b: RowFigures): boolean =>
  a.rows === b.rows && a.minId === b.minId && a.maxId === b.maxId && a.checksum === b.checksum;

export const describeFigures = (f: RowFigures): string =>
  `${f.rows} rows, ids ${f.minId ?? '-'}…${f.maxId ?? '-'}, checksum ${f.checksum}`;

/** Exact RFC 3339 text of an instant given in epoch microseconds (for bind parameters; a Date would drop µs). */
export function microsToIso(us: bigint): string {
  const seconds = us / 1_000_000n;
  let fraction = us % 1_000_000n;
  let whole = seconds;
  if (fraction < 0n) {
    fraction += 1_000_000n;
    whole -= 1n;
  }
  return `${new Date(Number(whole) * 1000).toISOString().slice(0, 19)}.${fraction.toString().padStart(6, '0')}Z`;
}
