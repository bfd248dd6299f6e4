import { AppError } from '#lib/errors';
import type { RecordStore } from './ports.ts';
import type { RecordValidator } from './schema.ts';
import type { IngestResult } from './types.ts';

export interface IngestRequest {
  /** The parsed JSON body. */
  readonly body: unknown;
  readonly idempotency?: { readonly key: string; readonly fingerprint: string };
}

export interface IngestService {
  /** Validates, then stores atomically; resolves only once every record is committed. */
  ingest(request: IngestRequest): Promise<IngestResult>;
}

export interface IngestServiceDeps {
  readonly store: RecordStore;
  readonly validator: RecordValidator;
}

/** The write side of the domain: validation before anything touches storage, then one atomic write. */
export function createIngestService({ store, validator }: IngestServiceDeps): IngestService {
  return {
    async ingest({ body, idempotency }) {
      const records = validator.validateIngestBody(body);
      if (idempotency === undefined) {
        return { records: await store.insert(records) };
      }
      const outcome = await store.insertIdempotent(records, {
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
