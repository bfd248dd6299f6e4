import { AppError, WriteAbandonedError } from '#lib/errors';
import type { RecordWriter, WriteGuard } from './ports.ts';
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
  /** Requests given up (deadline, client gone) while they waited in the queue. */
  readonly dropped: number;
}

interface Pending {
  readonly records: readonly NewRecord[];
  readonly ids: ReadonlySet<string>;
  readonly enqueuedAt: number;
  readonly guard: WriteGuard | undefined;
  resolve(written: WriteResult[]): void;
  reject(error: unknown): void;
}

const abandoned = (request: Pending): boolean => request.guard?.signal?.aborted === true;

/**
 * Group commit: concurrent `insert` calls in one process are coalesced into one multi-row INSERT (and so one
 * outbox statement and one commit) per batch; each caller resolves when its own batch has committed. While the
 * database is busy with `concurrency` batches, new requests gather into the next one, so batches grow with load
 * and no time is lost when the process is idle. Idempotent writes pass through (each is its own transaction).
 *
 * - Ids repeated across waiting requests never share a batch: the later request goes into the next batch and
 *   sees `duplicate`, exactly as if it had arrived alone.
 * - A failed batch of several requests is retried one request at a time, in its own slot (so within
 *   `concurrency`), so one request's failure cannot fail another's records.
 * - Deadlines (`WriteGuard`): a request given up while queued leaves the queue at once; a batch commits only if
 *   none of its requests was given up by then, otherwise it rolls back and the others go back to the queue's head.
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
  let dropped = 0;

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

  /** The batch commits only as a whole: if any of its requests was given up, none of them claims the commit. */
  function batchGuard(batch: readonly Pending[]): WriteGuard | undefined {
    if (batch.every((request) => request.guard === undefined)) return undefined;
    return {
      claimCommit: () => !batch.some(abandoned) && batch.every((request) => request.guard?.claimCommit() ?? true),
    };
  }

  async function run(batch: Pending[]): Promise<void> {
    const live = stillWanted(batch);
    if (live.length === 0) return;
    const records = live.flatMap((request) => request.records);
    const now = performance.now();
    onBatch?.(records.length, Math.max(...live.map((request) => now - request.enqueuedAt)));
    try {
      const written = await inner.insert(records, batchGuard(live));
      const byId = new Map(written.map((w) => [w.id, w]));
      batches++;
      committedRecords += records.length;
      for (const request of live) {
        request.resolve(request.records.map((r) => byId.get(r.id) ?? { id: r.id, status: 'duplicate' }));
      }
    } catch (error) {
      if (error instanceof WriteAbandonedError) {
        // Rolled back for the sake of the requests given up meanwhile: the rest were not at fault and go first.
        requeueFirst(stillWanted(live));
        return;
      }
      if (live.length === 1) {
        live[0]?.reject(error);
        return;
      }
      // Isolate the culprit: each request alone, one after another in this batch's slot, so the others still
      // commit and a failed batch never takes more connections than `concurrency`.
      for (const request of stillWanted(live)) {
        // Given up while an earlier one was retried: answered with its reason, not written.
        if (abandoned(request)) {
          request.reject(request.guard?.signal?.reason);
          continue;
        }
        try {
          request.resolve([...(await inner.insert(request.records, request.guard))]);
        } catch (own) {
          request.reject(own);
        }
      }
    }
  }

  /** The requests not given up; the others are answered with the reason they were. */
  function stillWanted(requests: readonly Pending[]): Pending[] {
    const wanted: Pending[] = [];
    for (const request of requests) {
      if (abandoned(request)) request.reject(request.guard?.signal?.reason);
      else wanted.push(request);
    }
    return wanted;
  }

  function requeueFirst(requests: readonly Pending[]): void {
    queue.unshift(...requests);
    for (const request of requests) queuedRecords += request.records.length;
  }

  function leaveQueue(request: Pending): void {
    const at = queue.indexOf(request);
    if (at === -1) return;
    queue.splice(at, 1);
    queuedRecords -= request.records.length;
    dropped++;
    request.reject(request.guard?.signal?.reason);
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
    insert(records, guard) {
      if (queuedRecords + records.length > options.maxQueuedRecords) {
        shed++;
        return Promise.reject(
          new AppError('overloaded', 'The ingest queue is full; retry shortly.', { retryAfterSeconds: 1 }),
        );
      }
      if (guard?.signal?.aborted) return Promise.reject(guard.signal.reason);
      return new Promise<WriteResult[]>((resolve, reject) => {
        const request: Pending = {
          records,
          ids: new Set(records.map((r) => r.id)),
          enqueuedAt: performance.now(),
          guard,
          resolve,
          reject,
        };
        guard?.signal?.addEventListener('abort', () => leaveQueue(request), { once: true });
        queue.push(request);
        queuedRecords += records.length;
        schedule();
      });
    },
    insertIdempotent: (records, claim, guard) => inner.insertIdempotent(records, claim, guard),
    stats: () => ({ batches, records: committedRecords, queuedRecords, inFlight, shed, dropped }),
  };
}
