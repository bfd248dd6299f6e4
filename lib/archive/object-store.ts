/**
 * The archive's side of S3: one client built from config (credentials from the SDK's default chain: IRSA's web
 * identity token on EKS, AWS_* variables in tests), the object layout, and the few operations the archiver
 * needs. The same code talks to AWS and to the S3-compatible test server; only endpoint and path style differ.
 *
 * Layout, one prefix per UTC day (Hive-style, so Athena's partition projection and DuckDB's hive_partitioning
 * see `day` as a column; names starting with `_` are skipped by both):
 *   {ARCHIVE_PREFIX}/records/day=2026-11-20/part-00000.parquet …
 *   {ARCHIVE_PREFIX}/records/day=2026-11-20/_manifest.json     written last, only after every object verified
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { ArchiveConfig } from '#lib/config';

/** Multipart part size: S3's minimum is 5 MiB; two parts in flight bound the upload's memory at ~16 MiB. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;

export interface ObjectStore {
  readonly bucket: string;
  readonly client: S3Client;
  /** The S3 URL of a key, for logs, manifests and documentation. */
  url(key: string): string;
  dayPrefix(day: string): string;
  objectKey(day: string, seq: number): string;
  manifestKey(day: string): string;
  /**
   * Streams an object in through a multipart upload (lib-storage). `produce` writes chunks with the given
   * function, which waits while the upload is behind. On any failure the upload is aborted, so no partial
   * object is ever visible; a crash leaves only an incomplete multipart upload, which `abortStaleUploads`
   * (and the bucket's lifecycle rule) removes.
   */
  upload<T>(
    key: string,
    contentType: string,
    produce: (write: (chunk: Buffer) => Promise<void>) => Promise<T>,
  ): Promise<T>;
  put(key: string, body: string, contentType: string): Promise<void>;
  /** Size of an object, undefined when there is none. */
  size(key: string): Promise<number | undefined>;
  /** Downloads an object to a local file; resolves with its size and SHA-256 (hex). */
  download(key: string, path: string): Promise<{ bytes: number; sha256: string }>;
  getText(key: string): Promise<string | undefined>;
  /** Aborts multipart uploads under `prefix` left by a crashed run; resolves with how many. */
  abortStaleUploads(prefix: string): Promise<number>;
  close(): void;
}

/** An S3 client and the archive's layout in one bucket. */
export function createObjectStore(config: ArchiveConfig): ObjectStore {
  const client = new S3Client({
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    ...(config.endpoint !== undefined && { endpoint: config.endpoint }),
    // S3 down must fail an archive run in seconds, not hang it: the next scheduled run retries.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000 },
    maxAttempts: 3,
  });
  const sse = {
    ...(config.sse !== undefined && { ServerSideEncryption: config.sse as ServerSideEncryption }),
    ...(config.sseKmsKeyId !== undefined && { SSEKMSKeyId: config.sseKmsKeyId }),
  };
  const bucket = config.bucket;
  const dayPrefix = (day: string) => `${config.prefix}/records/day=${day}/`;
  const status = (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

  return {
    bucket,
    client,
    url: (key) => `s3://${bucket}/${key}`,
    dayPrefix,
    objectKey: (day, seq) => `${dayPrefix(day)}part-${String(seq).padStart(5, '0')}.parquet`,
    manifestKey: (day) => `${dayPrefix(day)}_manifest.json`,

    async upload(key, contentType, produce) {
      const body = new PassThrough({ highWaterMark: PART_SIZE });
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType, ...sse },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false,
      });
      const done = upload.done();
      // If the upload fails while the producer waits for room, the producer must fail too, not wait forever.
      let failed: unknown;
      const failure = done.then(
        () => undefined,
        (error: unknown) => {
          failed = error;
          body.destroy();
          throw error;
        },
      );
      failure.catch(() => undefined);
      const write = async (chunk: Buffer): Promise<void> => {
        if (failed !== undefined) throw failed;
        if (!body.write(chunk)) await Promise.race([once(body, 'drain'), failure]);
      };
      try {
        const result = await produce(write);
        body.end();
        await done;
        return result;
      } catch (error) {
        await upload.abort().catch(() => undefined);
        body.destroy();
        await done.catch(() => undefined);
        throw failed ?? error;
      }
    },

    async put(key, text, contentType) {
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: contentType, ...sse }),
      );
    },

    async size(key) {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return head.ContentLength;
      } catch (error) {
        if (status(error) === 404) return undefined;
        throw error;
      }
    },

    async download(key, path) {
      const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (Body === undefined) throw new Error(`${key}: no body`);
      const hash = createHash('sha256');
      let bytes = 0;
      const source = Body as Readable;
      source.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      await pipeline(source, createWriteStream(path));
      return { bytes, sha256: hash.digest('hex') };
    },

    async getText(key) {
      try {
        const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return await Body?.transformToString('utf8');
      } catch (error) {
        if (status(error) === 404) return undefined;
        throw error;
      }
    },

    async abortStaleUploads(prefix) {
      let aborted = 0;
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        const page = await client.send(
          new ListMultipartUploadsCommand({
            Bucket: bucket,
            Prefix: prefix,
            ...(keyMarker !== undefined && { KeyMarker: keyMarker }),
            ...(uploadIdMarker !== undefined && { UploadIdMarker: uploadIdMarker }),
          }),
        );
        for (const stale of page.Uploads ?? []) {
          await client.send(
            new AbortMultipartUploadCommand({ Bucket: bucket, Key: stale.Key, UploadId: stale.UploadId }),
          );
          aborted++;
        }
        if (!page.IsTruncated) return aborted;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    },

    close: () => client.destroy(),
  };
}
