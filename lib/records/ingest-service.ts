import { AppError, type FieldIssue, IdConflictError, TimestampNotStoredError } from '#lib/errors';
import type { Caller, RecordWriter, WriteListener } from './ports.ts';
import { isPlainObject, type RecordValidator } from './schema.ts';
import { utcDayOf } from './timestamp.ts';
import type { IngestResult, NewRecord, WriteResult } from './types.ts';
import { writeDeadline } from './write-deadline.ts';

export interface IngestRequest {
  /** The parsed JSON body. */
  readonly body: unknown;
  /** Who writes: every record's source must be writable by it, and its idempotency keys are its own. */
  readonly caller: Caller;
  readonly idempotency?: { readonly key: string; readonly fingerprint: string };
  /** traceparent of the request, passed on to the records' events. */
  readonly traceContext?: string;
  /** Aborts when the client has gone: its write, if not yet committed, is given up. */
  readonly signal?: AbortSignal;
}

export interface IngestService {
  /** Validates, then stores atomically; resolves only once every record is committed. */
  ingest(request: IngestRequest): Promise<IngestResult>;
}

export interface IngestServiceDeps {
  /** Group commit and cache invalidation, when wired, sit inside this writer (see functions/ingest/app.ts). */
  readonly writer: RecordWriter;
  readonly validator: RecordValidator;
  /** A write not committed this long after validation is answered 503 and never commits afterwards. */
  readonly deadlineMs: number;
}

/** The write side of the domain: validation before anything touches storage, then one atomic write. */
export function createIngestService({ writer, validator, deadlineMs }: IngestServiceDeps): IngestService {
  return {
    async ingest(request) {
      const validated = validator.validateIngestBody(request.body);
      const batch = isPlainObject(request.body) && Array.isArray(request.body.records);
      refuseUnwritable(validated, request.caller, batch);
      try {
        return await store(validated, request);
      } catch (error) {
        // The store names the ids or days; the client is told which of its records they are.
        const issuesFor = (matches: (record: NewRecord) => boolean, field: string, detail: string) =>
          validated.flatMap((record, index) =>
            matches(record) ? [{ pointer: batch ? `/records/${index}/${field}` : `/${field}`, detail }] : [],
          );
        if (error instanceof TimestampNotStoredError) {
          const refused = new Set(error.days);
          const issues = issuesFor(
            (record) => refused.has(utcDayOf(record.timestamp)),
            'timestamp',
            'its day is outside the time window the database accepts',
          );
          throw new TimestampNotStoredError(error.days, issues);
        }
        if (!(error instanceof IdConflictError)) throw error;
        const conflicting = new Set(error.ids);
        throw new IdConflictError(
          error.ids,
          issuesFor((record) => conflicting.has(record.id), 'id', 'is already stored with other content'),
        );
      }
    },
  };

  async function store(
    validated: readonly NewRecord[],
    { caller, idempotency, traceContext, signal }: IngestRequest,
  ): Promise<IngestResult> {
    const records = traceContext === undefined ? validated : validated.map((r) => ({ ...r, traceContext }));
    const deadline = writeDeadline(deadlineMs, signal);
    if (idempotency === undefined) return { records: await deadline.settle(writer.insert(records, deadline)) };
    const claim = {
      ...idempotency,
      // A key is the caller's own: another caller using the same key neither blocks nor replays it.
      key: caller.id === '' ? idempotency.key : `${caller.id.length}:${caller.id}:${idempotency.key}`,
      result: (written: readonly WriteResult[]) => ({ records: written }),
    };
    const outcome = await deadline.settle(writer.insertIdempotent(records, claim, deadline));
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
  }
}

/** A batch is all or nothing: one record of a source the caller may not write refuses the whole request. */
function refuseUnwritable(records: readonly NewRecord[], caller: Caller, batch: boolean): void {
  const issues: FieldIssue[] = [];
  records.forEach((record, index) => {
    if (!caller.mayWrite(record.source)) {
      issues.push({
        pointer: batch ? `/records/${index}/source` : '/source',
        detail: `this token may not write to ${record.source}`,
      });
    }
  });
  const first = issues[0];
  if (first === undefined) return;
  throw new AppError(
    'forbidden',
    `${first.pointer}: ${first.detail}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}; nothing was stored.`,
    { issues },
  );
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
    async insert(records, guard) {
      const written = await writer.insert(records, guard);
      const fresh = created(records, written);
      if (fresh.length > 0) await listener.recordsWritten(fresh);
      return written;
    },
    async insertIdempotent(records, claim, guard) {
      const outcome = await writer.insertIdempotent(records, claim, guard);
      if (outcome.kind === 'committed') {
        const fresh = created(records, outcome.result.records);
        if (fresh.length > 0) await listener.recordsWritten(fresh);
      }
      return outcome;
    },
  };
}
