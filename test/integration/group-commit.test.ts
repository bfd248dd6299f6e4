/**
 * Group commit against real PostgreSQL: coalescing, nothing answered before its commit, nothing lost, one
 * request's duplicate or failure never failing another's records, and load shedding.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRecordWriter, type Database } from '#lib/db';
import { AppError, TimestampNotStoredError, WriteAbandonedError } from '#lib/errors';
import {
  createGroupCommitStore,
  type GroupCommitOptions,
  type NewRecord,
  type RecordWriter,
  writeDeadline,
} from '#lib/records';
import { createTestDatabase } from '../support/database.ts';

let db: Database;
let repository: RecordWriter;
beforeAll(() => {
  db = createTestDatabase(8);
  repository = createRecordWriter({ db, idempotencyTtlHours: 24 });
});
afterAll(async () => {
  await db.destroy();
});

const source = () => `group.${randomUUID().slice(0, 8)}`;
const recordOf = (src: string, id = randomUUID(), timestamp = new Date().toISOString()): NewRecord => ({
  id,
  source: src,
  type: 'reading',
  timestamp,
  payload: { n: 1 },
  payloadJson: '{"n":1}',
});

async function storedIds(src: string): Promise<Set<string>> {
  const rows = await db('records').select('id').where({ source: src });
  return new Set((rows as Array<{ id: string }>).map((r) => r.id));
}

/** A group-commit store over the repository; what a test does not set is a batch of up to 1,000, one at a time. */
const groupCommit = (options: Partial<GroupCommitOptions> = {}) =>
  createGroupCommitStore(repository, {
    maxBatchRecords: 1000,
    windowMs: 20,
    concurrency: 1,
    maxQueuedRecords: 100_000,
    ...options,
  });

describe('group commit', () => {
  it('coalesces 300 concurrent requests into far fewer commits and loses none', async () => {
    const store = groupCommit({ windowMs: 2, concurrency: 2 });
    const src = source();
    const records = Array.from({ length: 300 }, () => recordOf(src));
    const results = await Promise.all(records.map((r) => store.insert([r])));
    expect(results.map((r) => r[0])).toEqual(records.map((r) => ({ id: r.id, status: 'created' })));
    expect(store.stats().batches).toBeLessThan(60);
    expect(store.stats().records).toBe(300);
    expect(await storedIds(src)).toEqual(new Set(records.map((r) => r.id)));
  });

  it('answers no request before its records are committed and visible to another connection', async () => {
    const store = groupCommit({ maxBatchRecords: 50, windowMs: 1, concurrency: 2 });
    const src = source();
    const checks = Array.from({ length: 120 }, async () => {
      const record = recordOf(src);
      await store.insert([record]);
      // Read on another pooled connection at the moment of the answer.
      const seen = await db('records').count<{ count: string }[]>('* as count').where({ id: record.id });
      return Number(seen[0]?.count);
    });
    expect(await Promise.all(checks)).toEqual(Array(120).fill(1));
  });

  it('keeps a repeated id of two waiting requests out of one batch: one created, one duplicate, the rest created', async () => {
    const store = groupCommit();
    const src = source();
    const shared = randomUUID();
    // The same content under the shared id (timestamp included): a repeat is a duplicate, other content a conflict.
    const at = new Date().toISOString();
    const first = [recordOf(src, shared, at), recordOf(src)];
    const second = [recordOf(src), recordOf(src, shared, at)];
    const [a, b] = await Promise.all([store.insert(first), store.insert(second)]);
    expect(a).toEqual([
      { id: shared, status: 'created' },
      { id: first[1]?.id, status: 'created' },
    ]);
    expect(b).toEqual([
      { id: second[0]?.id, status: 'created' },
      { id: shared, status: 'duplicate' },
    ]);
    expect((await storedIds(src)).size).toBe(3);
  });

  it('isolates a failing request: the others in its batch still commit', async () => {
    const store = groupCommit();
    const src = source();
    // No partition exists in 2001, nor may one be made (outside the write window): this request's INSERT fails, as a
    // request the validator let through by mistake would, with the final timestamp-not-stored.
    const doomed = store.insert([recordOf(src, randomUUID(), '2001-01-01T00:00:00Z')]);
    const fine = Array.from({ length: 5 }, () => recordOf(src));
    const others = fine.map((r) => store.insert([r]));
    await expect(doomed).rejects.toBeInstanceOf(TimestampNotStoredError);
    expect((await Promise.all(others)).map((r) => r[0]?.status)).toEqual(Array(5).fill('created'));
    expect(await storedIds(src)).toEqual(new Set(fine.map((r) => r.id)));
  });

  it('sheds load past the queue bound with overloaded + Retry-After, and still commits what it accepted', async () => {
    const store = groupCommit({ maxBatchRecords: 10, windowMs: 50, maxQueuedRecords: 20 });
    const src = source();
    const attempts = Array.from({ length: 40 }, () => {
      const record = recordOf(src);
      return store.insert([record]).then(
        () => ({ id: record.id, ok: true as const }),
        (error: unknown) => ({ id: record.id, ok: false as const, error }),
      );
    });
    const outcomes = await Promise.all(attempts);
    const refused = outcomes.filter((o) => !o.ok);
    // 10 leave at once as a full batch, 20 wait (the bound), the last 10 are refused.
    expect(refused.length).toBe(10);
    for (const outcome of refused) {
      expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(AppError);
      const error = outcome.ok ? undefined : (outcome.error as AppError);
      expect({ code: error?.code, retry: error?.retryAfterSeconds }).toEqual({ code: 'overloaded', retry: 1 });
    }
    expect(store.stats().shed).toBe(10);
    expect(await storedIds(src)).toEqual(new Set(outcomes.filter((o) => o.ok).map((o) => o.id)));
  });

  it('never commits a write after its deadline answered it: in flight it rolls back, queued it is dropped', async () => {
    const store = groupCommit();
    const src = source();
    const [blocked, late, patient, queued, unguarded] = [1, 2, 3, 4, 5].map(() => recordOf(src)) as [
      NewRecord,
      NewRecord,
      NewRecord,
      NewRecord,
      NewRecord,
    ];
    // An uncommitted claim of one id in another session: the batch holding that id waits on the registry's
    // unique index, as it would behind a frozen database.
    const blocker = await db.transaction();
    await blocker.raw('INSERT INTO record_ids (id, "timestamp") VALUES (?, now())', [blocked.id]);
    const write = (record: NewRecord, deadlineMs?: number) => {
      const deadline = deadlineMs === undefined ? undefined : writeDeadline(deadlineMs);
      const written = store.insert([record], deadline);
      return (deadline ? deadline.settle(written) : written).then(
        (result) => ({ status: result[0]?.status, at: performance.now() }),
        (error: unknown) => ({
          status: error instanceof WriteAbandonedError ? 'abandoned' : String(error),
          at: performance.now(),
        }),
      );
    };
    const started = performance.now();
    // One batch (the window gathers them): two with a short deadline, one with a long one.
    const first = [write(blocked, 300), write(late, 300), write(patient, 10_000)];
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Behind the running batch (concurrency 1): one that gives up while queued, one without any deadline.
    const second = [write(queued, 300), write(unguarded)];
    await new Promise((resolve) => setTimeout(resolve, 900));
    await blocker.rollback();
    const [a, b, c, d, e] = await Promise.all([...first, ...second]);
    expect([a, b, c, d, e].map((o) => o?.status)).toEqual([
      'abandoned',
      'abandoned',
      'created',
      'abandoned',
      'created',
    ]);
    // The short deadlines answered while the database still held the batch, not when it let go.
    for (const outcome of [a, b, d]) expect((outcome?.at ?? Infinity) - started).toBeLessThan(900);
    expect(store.stats().dropped).toBe(1);
    // Nothing given up was stored, then or later.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await storedIds(src)).toEqual(new Set([patient.id, unguarded.id]));
  });
});
