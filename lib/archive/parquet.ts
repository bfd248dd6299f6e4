/**
 * The archive's Parquet form: one file per object, written row group by row group to a stream (the S3 upload),
 * read back row group by row group from a local file. Writer: hyparquet-writer (MIT, pure JS, one dependency,
 * maintained); reader: hyparquet, its companion. The tests read the same files with pyarrow, an independent
 * implementation, so neither half only agrees with itself.
 *
 * Columns: `id` UUID (FIXED_LEN_BYTE_ARRAY 16), `source` and `type` STRING, `timestamp` and `received_at`
 * TIMESTAMP(MICROS, UTC) INT64, `payload` STRING holding the JSON text (Athena's json_extract and DuckDB's
 * `::JSON` take it as it is; a JSON-annotated column would make the writer re-serialise the text, and
 * JSON.parse would round big numbers). Snappy-compressed, with statistics, so a reader that filters on
 * `timestamp` or `source` skips whole row groups.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileMetaData, SchemaElement } from 'hyparquet';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { ArchivedRow } from './row-format.ts';

const timestampColumn = (name: string): SchemaElement => ({
  name,
  type: 'INT64',
  repetition_type: 'REQUIRED',
  converted_type: 'TIMESTAMP_MICROS',
  logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
});
const stringColumn = (name: string): SchemaElement => ({
  name,
  type: 'BYTE_ARRAY',
  repetition_type: 'REQUIRED',
  converted_type: 'UTF8',
  logical_type: { type: 'STRING' },
});

/** The archive's Parquet schema (the root element first, as the format has it). */
export const ARCHIVE_SCHEMA: SchemaElement[] = [
  { name: 'records', num_children: 6 },
  {
    name: 'id',
    type: 'FIXED_LEN_BYTE_ARRAY',
    type_length: 16,
    repetition_type: 'REQUIRED',
    logical_type: { type: 'UUID' },
  },
  stringColumn('source'),
  stringColumn('type'),
  timestampColumn('timestamp'),
  stringColumn('payload'),
  timestampColumn('received_at'),
];

/** A row group is cut at this much row data even below ARCHIVE_ROW_GROUP_ROWS: payloads may be 64 KiB each. */
export const ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024;

/** hyparquet's ByteWriter that hands its bytes to `sink` after every row group, so memory holds one group. */
class StreamingByteWriter extends ByteWriter {
  readonly hash: Hash = createHash('sha256');
  private readonly sink: (chunk: Buffer) => Promise<void>;

  constructor(sink: (chunk: Buffer) => Promise<void>) {
    super(1024 * 1024);
    this.sink = sink;
  }

  flush(): Promise<void> {
    // A copy: the writer reuses its buffer for the next group while the upload still holds this chunk.
    const chunk = Buffer.from(new Uint8Array(this.buffer, 0, this.index));
    this.index = 0;
    this.hash.update(chunk);
    return this.sink(chunk);
  }

  override finish(): Promise<void> {
    return this.flush();
  }
}

/** Writes rows as one Parquet file to `sink`, one row group per `writeGroup`; reports bytes and SHA-256. */
export class ArchiveFileWriter {
  private readonly bytes: StreamingByteWriter;
  private readonly parquet: ParquetWriter;
  private groups = 0;

  constructor(sink: (chunk: Buffer) => Promise<void>, day: string) {
    this.bytes = new StreamingByteWriter(sink);
    this.parquet = new ParquetWriter({
      writer: this.bytes,
      schema: ARCHIVE_SCHEMA,
      codec: 'SNAPPY',
      kvMetadata: [
        { key: 'data-service.table', value: 'records' },
        { key: 'data-service.day', value: day },
      ],
      createdBy: 'data-service archive (hyparquet-writer)',
    });
  }

  /** Encodes `rows` as one row group and waits until its bytes were taken by the sink (backpressure). */
  async writeGroup(rows: readonly ArchivedRow[]): Promise<void> {
    if (rows.length === 0) return;
    this.groups++;
    await this.parquet.write({
      rowGroupSize: rows.length,
      columnData: [
        { name: 'id', data: rows.map((r) => r.id) },
        { name: 'source', data: rows.map((r) => r.source) },
        { name: 'type', data: rows.map((r) => r.type) },
        { name: 'timestamp', data: rows.map((r) => r.timestampUs) },
        { name: 'payload', data: rows.map((r) => r.payload) },
        { name: 'received_at', data: rows.map((r) => r.receivedAtUs) },
      ],
    });
  }

  /** Writes the footer; resolves with the file's size, SHA-256 (hex) and row-group count. */
  async finish(): Promise<{ bytes: number; sha256: string; rowGroups: number }> {
    await this.parquet.finish();
    return { bytes: this.bytes.offset, sha256: this.bytes.hash.digest('hex'), rowGroups: this.groups };
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const uuidText = (bytes: Uint8Array): string => {
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
// Raw values for what the checksum and a restore need exactly: microseconds as bigint, text as text.
const RAW_PARSERS = {
  timestampFromMicroseconds: (micros: bigint) => micros,
  uuidFromBytes: uuidText,
  jsonFromBytes: (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8'),
};

/** An archived Parquet file on local disk, read one row group at a time. */
export interface ArchiveFileReader {
  readonly metadata: FileMetaData;
  readonly rows: number;
  readonly rowGroups: number;
  /** Yields the rows of each row group in turn (memory: one group). */
  groups(): AsyncGenerator<ArchivedRow[]>;
}

export async function openArchiveFile(path: string): Promise<ArchiveFileReader> {
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  const names = metadata.schema.slice(1).map((s) => s.name);
  const expected = ARCHIVE_SCHEMA.slice(1).map((s) => s.name);
  if (names.join(',') !== expected.join(',')) {
    throw new Error(`unexpected Parquet columns ${names.join(',')} (expected ${expected.join(',')})`);
  }
  return {
    metadata,
    rows: Number(metadata.num_rows),
    rowGroups: metadata.row_groups.length,
    async *groups() {
      let start = 0;
      for (const group of metadata.row_groups) {
        const end = start + Number(group.num_rows);
        const objects = await parquetReadObjects({
          file,
          metadata,
          rowStart: start,
          rowEnd: end,
          parsers: RAW_PARSERS,
        });
        yield objects.map((o) => ({
          id: String(o.id),
          source: String(o.source),
          type: String(o.type),
          timestampUs: BigInt(o.timestamp as bigint),
          payload: String(o.payload),
          receivedAtUs: BigInt(o.received_at as bigint),
        }));
        start = end;
      }
    },
  };
}
