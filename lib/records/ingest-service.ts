import { AppError } from '#lib/errors';
import type { RecordWriter, WriteListener } from './ports.ts';
import type { RecordValidator } from './schema.ts';
import type { IngestResult } from './types.ts';

export interface IngestRequest {
  /** The parsed JSON body. */
  readonly body: unknown;
  readonly idempotency?: { readonly key: string; readonly fingerprint: string };
  /** traceparent of the request, passed on to the records' events. */
  readonly traceContext?: string;
}

export interface IngestService {
  /** Validates, then stores atomically; resolves only once every record is committed. */
  ingest(request: IngestRequest): Promise<IngestResult>;
}

export interface IngestServiceDeps {
  /** Group commit and cache invalidation, when wired, sit inside this writer (see functions/ingest/app.ts). */
  readonly writer: RecordWriter;
  readonly validator: RecordValidator;
}

/** The write side of the domain: validation before anything touches storage, then one atomic write. */
export function createIngestService({ writer, validator }: IngestServiceDeps): IngestService {
  return {
    async ingest({ body, idempotency, traceContext }) {
      const validated = validator.validateIngestBody(body);
      const records = traceContext === undefined ? validated : validated.map((r) => ({ ...r, traceContext }));
      if (idempotency === undefined) return { records: await writer.insert(records) };
      const outcome = await writer.insertIdempotent(records, {
        ...idempotency,
        result: (written) => ({ records: written }),
      });
      switch (outcome.kind) {
        case 'committed':
        case 'replayed':
          return outcome.result;
        case 'fingerprint-mismatch':
          throw new AppError(
            'idempotency-key-reused',
            'This Idempotency-Key was already used with a different request body.',
          );
        case 'in-flight':
          throw new AppError(
            'idempotency-in-flight',
            'A request with this Idempotency-Key is still being processed; retry after it completes.',
            { retryAfterSeconds: 1 },
          );
      }
    },
  };
}

/**
 * Tells `listener` about the records each write created, after its commit and before its caller is answered,
 * so no cached absence or page outlives the write. Wrapped inside group commit, it runs once per batch.
 */
export function notifyingWrites(writer: RecordWriter, listener: WriteListener): RecordWriter {
  const created = <R extends { id: string }>(
    records: readonly R[],
    written: ReadonlyArray<{ id: string; status: string }>,
  ) => {
    const ids = new Set(written.filter((w) => w.status === 'created').map((w) => w.id));
    return records.filter((r) => ids.has(r.id));
  };
  return {
    async insert(records) {
      const written = await writer.insert(records);
      const fresh = created(records, written);
      if (fresh.length > 0) await listener.recordsWritten(fresh);
      return written;
    },
    async insertIdempotent(records, claim) {
      const outcome = await writer.insertIdempotent(records, claim);
      if (outcome.kind === 'committed') {
        const fresh = created(records, outcome.result.records);
        if (fresh.length > 0) await listener.recordsWritten(fresh);
      }
      return outcome;
    },
  };
}
