/**
 * Partition maintenance on a private database: partitions created ahead for the write window, retention that
 * drops whole days together with their id-registry rows, idempotent reruns, and concurrent maintainers.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  createRecordReader,
  createRecordWriter,
  type Database,
  listPartitions,
  maintainPartitions,
  partitionName,
} from '#lib/db';
import { databaseAt } from '../support/database.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';

const DAY = 86_400_000;
let database: PrivateDatabase;
let db: Database;

beforeAll(async () => {
  database = await createPrivateDatabase('parts');
  db = databaseAt(database.url, { poolMax: 4, statementTimeoutMs: 30_000 });
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

const startOfDay = (ms: number) => Math.floor(ms / DAY) * DAY;

describe('partition maintenance', () => {
  it('creates every day of the write window plus the days ahead, and a rerun creates nothing', async () => {
    const now = Date.now();
    const plan = { pastDays: 3, aheadDays: 2, retentionDays: 0, idempotencyTtlHours: 24 };
    await maintainPartitions(db, plan, now);
    const names = new Set(await listPartitions(db));
    for (let day = startOfDay(now) - 4 * DAY; day <= startOfDay(now) + 2 * DAY; day += DAY) {
      expect(names.has(partitionName(day))).toBe(true);
    }
    const rerun = await maintainPartitions(db, plan, now);
    expect(rerun.created).toEqual([]);
  });

  it('serialises concurrent maintainers: each partition is created once, none fails', async () => {
    const now = Date.now() + 20 * DAY;
    const plan = { pastDays: 1, aheadDays: 3, retentionDays: 0, idempotencyTtlHours: 24 };
    const reports = await Promise.all([1, 2, 3].map(() => maintainPartitions(db, plan, now)));
    const created = reports.flatMap((r) => r.created);
    expect(new Set(created).size).toBe(created.length);
    expect(created.length).toBeGreaterThan(0);
  });

  it('drops partitions past retention with their registry rows, and keeps the rest readable', async () => {
    const now = Date.now();
    await maintainPartitions(db, { pastDays: 40, aheadDays: 1, retentionDays: 0, idempotencyTtlHours: 24 }, now);
    const store = createRecordWriter({ db, idempotencyTtlHours: 24 });
    const reader = createRecordReader(db);
    const idOf = async (id: string) => {
      const found = await reader.findById(id);
      return found === undefined ? undefined : (JSON.parse(found.json) as { id: string }).id;
    };
    const old = { id: randomUUID(), at: new Date(now - 35 * DAY).toISOString() };
    const recent = { id: randomUUID(), at: new Date(now - 2 * DAY).toISOString() };
    await store.insert(
      [old, recent].map((r) => ({
        id: r.id,
        source: 'retention',
        type: 't',
        timestamp: r.at,
        payload: { n: 1 },
        payloadJson: '{"n":1}',
      })),
    );
    expect(await idOf(old.id)).toBe(old.id);

    const report = await maintainPartitions(
      db,
      { pastDays: 7, aheadDays: 1, retentionDays: 30, idempotencyTtlHours: 24 },
      now,
    );
    expect(report.dropped).toContain(partitionName(startOfDay(now - 35 * DAY)));
    expect(report.registryRowsDeleted).toBeGreaterThanOrEqual(1);
    expect(await idOf(old.id)).toBeUndefined();
    expect(await idOf(recent.id)).toBe(recent.id);
    const remaining = await listPartitions(db);
    expect(remaining.some((name) => name <= partitionName(startOfDay(now - 31 * DAY)))).toBe(false);
    // The id may be used again once its day is gone: the registry forgot it.
    const again = await store.insert([
      { id: old.id, source: 'retention', type: 't', timestamp: recent.at, payload: {}, payloadJson: '{}' },
    ]);
    expect(again).toEqual([{ id: old.id, status: 'created' }]);
  });

  it("takes the day from PostgreSQL's clock, not the pod's", async () => {
    const plan = { pastDays: 1, aheadDays: 1, retentionDays: 0, idempotencyTtlHours: 24 };
    const { rows } = await db.raw<{ rows: Array<{ ms: number }> }>(
      'SELECT (extract(epoch FROM now()) * 1000)::float8 AS ms',
    );
    const dbToday = startOfDay(Number(rows[0]?.ms));
    const realNow = Date.now;
    // A pod whose clock is 400 days ahead: its "today" would create far-future days and none of the real ones.
    Date.now = () => realNow() + 400 * DAY;
    let report: Awaited<ReturnType<typeof maintainPartitions>>;
    try {
      report = await maintainPartitions(db, plan);
    } finally {
      Date.now = realNow;
    }
    const names = new Set(await listPartitions(db));
    for (const day of [dbToday - DAY, dbToday, dbToday + DAY]) expect(names.has(partitionName(day))).toBe(true);
    expect(report.created.filter((name) => name >= partitionName(dbToday + 300 * DAY))).toEqual([]);
    expect([...names].filter((name) => name >= partitionName(dbToday + 300 * DAY))).toEqual([]);
  });

  it('never drops a day that may still take writes, whatever the retention asks', async () => {
    const now = Date.now() + 60 * DAY;
    await maintainPartitions(db, { pastDays: 5, aheadDays: 1, retentionDays: 0, idempotencyTtlHours: 24 }, now);
    // A plan built by hand with retention inside the write window (config refuses it): days within 5 are kept.
    const report = await maintainPartitions(
      db,
      { pastDays: 5, aheadDays: 1, retentionDays: 1, idempotencyTtlHours: 24 },
      now,
    );
    const names = new Set(await listPartitions(db));
    for (let back = 0; back <= 5; back++) {
      expect({ back, kept: names.has(partitionName(startOfDay(now) - back * DAY)) }).toEqual({ back, kept: true });
    }
    expect(report.dropped).toContain(partitionName(startOfDay(now) - 6 * DAY));
  });
});
