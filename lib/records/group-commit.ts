import { AppError } from '#lib/errors';
import type { RecordWriter } from './ports.ts';
import type { NewRecord, WriteResult } from './types.ts';

export interface GroupCommitOptions {
  /** Records per combined INSERT; a batch closes as soon as it holds this many. */
  readonly maxBatchRecords: number;
  /** How long the first request of a batch may wait for company when no batch is running. */
  readonly windowMs: number;
  /** Batches in flight at once (each holds one pooled connection). */
  readonly concurrency: number;
  /** Records waiting beyond which new requests are shed with a 503 instead of queueing. */
  readonly maxQueuedRecords: number;
}

export interface GroupCommitStats {
  readonly batches: number;
  readonly records: number;
  readonly queuedRecords: number;
  readonly inFlight: number;
  readonly shed: number;
}

interface Pending {
  readonly records: readonly NewRecord[];
  readonly ids: ReadonlySet<string>;
  readonly enqueuedAt: number;
  resolve(written: WriteResult[]): void;
  reject(error: unknown): void;
}

/**
 * Group commit: concurrent `insert` calls in one process are coalesced into one multi-row INSERT (and so one
 * outbox statement and one commit) per batch; each caller resolves when its own batch has committed. While the
 * database is busy with `concurrency` batches, new requests gather into the next one, so batches grow with load
 * and no time is lost when the process is idle. Idempotent writes pass through (each is its own transaction).
 *
 * - Ids repeated across waiting requests never share a batch: the later request goes into the next batch and
 *   sees `duplicate`, exactly as if it had arrived alone.
 * - A failed batch of several requests is retried one request at a time, so one request's failure cannot fail
 *   another's records.
 * - The queue is bounded: past `maxQueuedRecords` a request is refused at once with 503 + Retry-After.
 */
export function createGroupCommitStore(
  inner: RecordWriter,
  options: GroupCommitOptions,
  onBatch?: (records: number, waitedMs: number) => void,
): RecordWriter & { stats(): GroupCommitStats } {
  const queue: Pending[] = [];
  let queuedRecords = 0;
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let batches = 0;
  let committedRecords = 0;
  let shed = 0;

  function takeBatch(): Pending[] {
    const batch: Pending[] = [];
    const ids = new Set<string>();
    let size = 0;
    for (let i = 0; i < queue.length; ) {
      const request = queue[i] as Pending;
      const fits = size === 0 || size + request.records.length <= options.maxBatchRecords;
      const clashes = [...request.ids].some((id) => ids.has(id));
      if (!fits) break;
      if (clashes) {
        i++;
        continue;
      }
      queue.splice(i, 1);
      queuedRecords -= request.records.length;
      batch.push(request);
      size += request.records.length;
      for (const id of request.ids) ids.add(id);
    }
    return batch;
  }

  async function run(batch: Pending[]): Promise<void> {
    const records = batch.flatMap((request) => request.records);
    const now = performance.now();
    onBatch?.(records.length, Math.max(...batch.map((request) => now - request.enqueuedAt)));
    try {
      const written = await inner.insert(records);
      const byId = new Map(written.map((w) => [w.id, w]));
      batches++;
      committedRecords += records.length;
      for (const request of batch) {
        request.resolve(request.records.map((r) => byId.get(r.id) ?? { id: r.id, status: 'duplicate' }));
      }
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      // Isolate the culprit: each request alone, so the others still commit.
      await Promise.all(
        batch.map(async (request) => {
          try {
            request.resolve([...(await inner.insert(request.records))]);
          } catch (own) {
            request.reject(own);
          }
        }),
      );
    }
  }

  function flush(): void {
    clearTimeout(timer);
    timer = undefined;
    while (inFlight < options.concurrency && queue.length > 0) {
      const batch = takeBatch();
      if (batch.length === 0) return;
      inFlight++;
      void run(batch).finally(() => {
        inFlight--;
        // Whoever queued meanwhile has already waited a whole batch: no extra window.
        if (queue.length > 0) flush();
      });
    }
  }

  function schedule(): void {
    if (queuedRecords >= options.maxBatchRecords || options.windowMs === 0) {
      flush();
      return;
    }
    // A free slot waits `windowMs` for company; with every slot busy the next completion flushes.
    if (inFlight < options.concurrency && timer === undefined) timer = setTimeout(flush, options.windowMs);
  }

  return {
    insert(records) {
      if (queuedRecords + records.length > options.maxQueuedRecords) {
        shed++;
        return Promise.reject(
          new AppError('overloaded', 'The ingest queue is full; retry shortly.', { retryAfterSeconds: 1 }),
        );
      }
      return new Promise<WriteResult[]>((resolve, reject) => {
        queue.push({ records, ids: new Set(records.map((r) => r.id)), enqueuedAt: performance.now(), resolve, reject });
        queuedRecords += records.length;
        schedule();
      });
    },
    insertIdempotent: (records, claim) => inner.insertIdempotent(records, claim),
    stats: () => ({ batches, records: committedRecords, queuedRecords, inFlight, shed }),
  };
}
