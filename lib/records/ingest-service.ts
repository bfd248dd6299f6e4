import { AppError } from '#lib/errors';
import type { RecordCache, RecordStore } from './ports.ts';
import type { RecordValidator } from './schema.ts';
import type { IngestResult, NewRecord, WriteResult } from './types.ts';

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
  readonly store: RecordStore;
  readonly validator: RecordValidator;
  /** Told about every committed write before the client is answered, so no cached absence outlives it. */
  readonly cache?: Pick<RecordCache, 'recordsWritten'>;
}

/** The write side of the domain: validation before anything touches storage, then one atomic write. */
export function createIngestService({ store, validator, cache }: IngestServiceDeps): IngestService {
  const forgetCached = async (records: readonly NewRecord[], written: readonly WriteResult[]) => {
    if (cache === undefined) return;
    const created = new Set(written.filter((w) => w.status === 'created').map((w) => w.id));
    if (created.size > 0) await cache.recordsWritten(records.filter((r) => created.has(r.id)));
  };

  return {
    async ingest({ body, idempotency, traceContext }) {
      const validated = validator.validateIngestBody(body);
      const records = traceContext === undefined ? validated : validated.map((r) => ({ ...r, traceContext }));
      if (idempotency === undefined) {
        const written = await store.insert(records);
        await forgetCached(records, written);
        return { records: written };
      }
      const outcome = await store.insertIdempotent(records, {
        ...idempotency,
        result: (written) => ({ records: written }),
      });
      switch (outcome.kind) {
        case 'committed':
          await forgetCached(records, outcome.result.records);
          return outcome.result;
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
