import type { Knex } from 'knex';

const DAY_MS = 86_400_000;
// One lock for every maintainer: pods start together, and CREATE TABLE ... PARTITION OF is not race-free.
const MAINTENANCE_LOCK = 4_242_001;

export interface PartitionPlan {
  /** Oldest day that must accept writes (the validator's past window). */
  readonly pastDays: number;
  /** Days created ahead of today, so a partition always exists before its first write. */
  readonly aheadDays: number;
  /** Partitions wholly older than this many days are dropped; 0 keeps everything. */
  readonly retentionDays: number;
  readonly idempotencyTtlHours: number;
}

export interface MaintenanceReport {
  readonly created: string[];
  readonly dropped: string[];
  readonly idempotencyKeysDeleted: number;
  readonly timescale: boolean;
}

/** The partition plan a service configuration implies: the validator's past window decides how far back. */
export function partitionPlanFrom(config: {
  readonly records: { readonly maxPastMs: number };
  readonly storage: {
    readonly partitionPrecreateDays: number;
    readonly retentionDays: number;
    readonly idempotencyTtlHours: number;
  };
}): PartitionPlan {
  return {
    pastDays: Math.ceil(config.records.maxPastMs / DAY_MS),
    aheadDays: config.storage.partitionPrecreateDays,
    retentionDays: config.storage.retentionDays,
    idempotencyTtlHours: config.storage.idempotencyTtlHours,
  };
}

/** Daily partition name for a UTC day: records_20261126. */
export const partitionName = (dayStartMs: number): string =>
  `records_${new Date(dayStartMs).toISOString().slice(0, 10).replaceAll('-', '')}`;

const startOfUtcDay = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;

/**
 * Creates the daily partitions the accepted time window needs (and `aheadDays` more), drops those past
 * retention together with their id-registry rows, and forgets expired idempotency keys. Idempotent and safe to
 * run from every pod at once.
 */
export async function maintainPartitions(db: Knex, plan: PartitionPlan, now = Date.now()): Promise<MaintenanceReport> {
  return db.transaction(async (trx) => {
    await trx.raw('SELECT pg_advisory_xact_lock(?)', [MAINTENANCE_LOCK]);
    const timescale = await isHypertable(trx);
    const created: string[] = [];
    const dropped: string[] = [];
    if (!timescale) {
      const existing = new Set(await listPartitions(trx));
      const today = startOfUtcDay(now);
      for (let day = today - (plan.pastDays + 1) * DAY_MS; day <= today + plan.aheadDays * DAY_MS; day += DAY_MS) {
        const name = partitionName(day);
        if (existing.has(name)) continue;
        // DDL takes no bind parameters; the bounds are ISO strings this code generated, never client input.
        const from = new Date(day).toISOString();
        const to = new Date(day + DAY_MS).toISOString();
        await trx.raw(`CREATE TABLE ?? PARTITION OF records FOR VALUES FROM ('${from}') TO ('${to}')`, [name]);
        created.push(name);
      }
      if (plan.retentionDays > 0) {
        const cutoff = today - plan.retentionDays * DAY_MS;
        for (const name of existing) {
          const day = dayOfPartition(name);
          if (day !== undefined && day + DAY_MS <= cutoff) {
            await trx.raw('DROP TABLE ??', [name]);
            dropped.push(name);
          }
        }
        if (dropped.length > 0) {
          await trx.raw('DELETE FROM record_ids WHERE "timestamp" < ?', [new Date(cutoff).toISOString()]);
        }
      }
    } else if (plan.retentionDays > 0) {
      await trx.raw(`SELECT drop_chunks('records', older_than => make_interval(days => ?))`, [plan.retentionDays]);
      await trx.raw(`DELETE FROM record_ids WHERE "timestamp" < now() - make_interval(days => ?)`, [
        plan.retentionDays,
      ]);
    }
    const deleted = await trx.raw(`DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ?)`, [
      plan.idempotencyTtlHours,
    ]);
    return { created, dropped, idempotencyKeysDeleted: deleted.rowCount ?? 0, timescale };
  });
}

/** Names of the existing daily partitions of `records`. */
export async function listPartitions(db: Knex): Promise<string[]> {
  const result = await db.raw(`
    SELECT c.relname AS name FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = 'records' AND p.relnamespace = current_schema()::regnamespace
    ORDER BY c.relname`);
  return (result.rows as Array<{ name: string }>).map((row) => row.name);
}

function dayOfPartition(name: string): number | undefined {
  const match = /^records_(\d{4})(\d{2})(\d{2})$/.exec(name);
  return match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) : undefined;
}

async function isHypertable(db: Knex): Promise<boolean> {
  const result = await db.raw(`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND EXISTS (SELECT 1 FROM pg_class WHERE relname = 'records' AND relkind = 'r') AS hyper`);
  return Boolean((result.rows as Array<{ hyper: boolean }>)[0]?.hyper);
}

/**
 * Runs `maintainPartitions` now and then every `intervalMs` in the background. A failure is logged and retried
 * after `retryMs`: a database that is down when the function starts must not leave it without partitions for an
 * hour, nor keep it from starting.
 */
export function schedulePartitionMaintenance(
  db: Knex,
  plan: PartitionPlan,
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void },
  { intervalMs = 3_600_000, retryMs = 15_000 }: { intervalMs?: number; retryMs?: number } = {},
): { stop(): void; firstRun: Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const run = async (): Promise<void> => {
    let delay = intervalMs;
    try {
      const report = await maintainPartitions(db, plan);
      if (report.created.length + report.dropped.length > 0 || report.idempotencyKeysDeleted > 0) {
        log.info({ ...report }, 'partition maintenance');
      }
    } catch (error) {
      log.warn({ err: error, retry_in_ms: retryMs }, 'partition maintenance failed; will retry');
      delay = retryMs;
    }
    if (!stopped) {
      timer = setTimeout(() => void run(), delay);
      timer.unref();
    }
  };
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
    firstRun: run(),
  };
}
