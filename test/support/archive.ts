/**
 * What the archive tests share: the archive config on the S3 test server (`npm run services:up -- s3` exports
 * S3_*; each test file uses a prefix of its own, so parallel files and reruns never see each other's objects),
 * a day of generated records written through the real writer, and the rows of a partition for comparison.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Knex } from 'knex';
import type { ArchiveConfig } from '#lib/config';
import { createRecordWriter, partitionName } from '#lib/db';
import { run } from '../../scripts/processes.ts';
import { S3_VENV } from '../../scripts/services/s3.ts';
import { ROOT } from './processes.ts';

export const DAY = 86_400_000;
export const startOfDay = (ms: number): number => Math.floor(ms / DAY) * DAY;

/** The archive config for the S3 test server, under a fresh prefix. */
export function testArchiveConfig(overrides: Partial<ArchiveConfig> = {}): ArchiveConfig {
  const bucket = process.env.S3_BUCKET;
  if (!bucket || !process.env.S3_ENDPOINT) {
    throw new Error('S3_BUCKET/S3_ENDPOINT are not set; run the suite with `npm test` (it starts the S3 server).');
  }
  return {
    bucket,
    endpoint: process.env.S3_ENDPOINT,
    region: process.env.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    sse: 'AES256',
    sseKmsKeyId: undefined,
    afterDays: 30,
    prefix: `test-${randomBytes(4).toString('hex')}`,
    rowGroupRows: 300,
    objectRows: 1_000,
    ...overrides,
  };
}

export const silentLogger = { info: () => undefined, warn: () => undefined };

/**
 * Writes `count` records into the day starting at `dayMs` through the service's own writer: microsecond
 * timestamps, v4 ids, payloads with unicode, escapes, a number beyond double precision, fractions and nesting. `payloadBytes`
 * pads each payload with random (incompressible) text, to make objects large.
 */
export async function writeDay(
  db: Knex,
  dayMs: number,
  count: number,
  { source = `archive.${randomBytes(3).toString('hex')}`, payloadBytes = 0 } = {},
): Promise<string[]> {
  const writer = createRecordWriter({ db, idempotencyTtlHours: 24 });
  const ids: string[] = [];
  for (let start = 0; start < count; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - start) }, (_, k) => {
      const n = start + k;
      const micros = String(n % 1_000_000).padStart(6, '0');
      const at = new Date(dayMs + Math.floor((n * (DAY - 1000)) / count));
      const timestamp = `${at.toISOString().slice(0, 19)}.${micros}Z`;
      const payload = {
        n,
        text: n % 7 === 0 ? 'naïve café — 東京 🚀 "quoted" \\ back' : `row ${n}`,
        fraction: n / 8,
        nested: { list: [n, null, true, { deep: 'x' }] },
        ...(payloadBytes > 0 && { pad: randomBytes(payloadBytes / 2).toString('hex') }),
      };
      const id = randomUUID();
      ids.push(id);
      return {
        id,
        source,
        type: n % 3 === 0 ? 'order.created' : 'page.view',
        timestamp,
        payload,
        payloadJson: JSON.stringify(payload),
      };
    });
    await writer.insert(batch);
  }
  return ids;
}

/** Every row of a day's partition as PostgreSQL prints it, in id order: what a restore must give back. */
export async function dayRows(db: Knex, dayMs: number): Promise<string[]> {
  const { rows } = await db.raw(
    `SELECT concat_ws('|', id, source, type, "timestamp", payload::text, received_at) AS line
     FROM ${partitionName(dayMs)} ORDER BY id`,
  );
  return (rows as Array<{ line: string }>).map((r) => r.line);
}

export interface PyarrowView {
  readonly num_rows: number;
  readonly row_groups: number;
  readonly schema: Record<string, string>;
  readonly compression: string | null;
  readonly rows: Array<{
    id: string;
    source: string;
    type: string;
    timestamp_us: number;
    payload: Record<string, unknown>;
  }>;
}

/** Reads an archived object with pyarrow (test/support/read-parquet.py, in the S3 server's venv). */
export async function readWithPyarrow(bucket: string, key: string, ids: readonly string[]): Promise<PyarrowView> {
  const result = await run(
    join(S3_VENV, 'bin', 'python'),
    [join(ROOT, 'test/support/read-parquet.py'), bucket, key, ...ids],
    {
      timeoutMs: 60_000,
      env: { ...process.env },
    },
  );
  if (result.exitCode !== 0) throw new Error(`read-parquet.py failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PyarrowView;
}
