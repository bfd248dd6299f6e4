import type { Knex } from 'knex';

const DAY_MS = 86_400_000;
// One lock for every maintainer: pods start together, and creating a partition is not race-free.
const MAINTENANCE_LOCK = 4_242_001;
const MAINTENANCE_LOCK_TIMEOUT_MS = 10_000;

export interface PartitionPlan {
  /** Oldest day that must accept writes (the validator's past window). */
  readonly pastDays: number;
  /** Days created ahead of today, so a partition always exists before its first write. */
  readonly aheadDays: number;
  /** Partitions wholly older than this many days are dropped; 0 keeps everything. */
  readonly retentionDays: number;
  readonly idempotencyTtlHours: number;
  /**
   * With an archive configured (S3_BUCKET), retention drops only days whose archive is verified (`archive_days`,
   * migration 0009) and keeps their id-registry rows, so an archived id is still a duplicate on a new write.
   */
  readonly requireArchive?: boolean;
}

export interface MaintenanceReport {
  readonly created: string[];
  readonly dropped: string[];
  readonly idempotencyKeysDeleted: number;
  readonly registryRowsDeleted: number;
  readonly timescale: boolean;
  /** Partitions past retention kept because their archive is not verified yet (or a restore holds them). */
  readonly awaitingArchive: string[];
}

/** The partition plan a service configuration implies: the validator's past window decides how far back. */
export function partitionPlanFrom(config: {
  readonly records: { readonly maxPastMs: number };
  readonly storage: {
    readonly partitionPrecreateDays: number;
    readonly retentionDays: number;
    readonly idempotencyTtlHours: number;
  };
  readonly archive?: object | undefined;
}): PartitionPlan {
  return {
    pastDays: Math.ceil(config.records.maxPastMs / DAY_MS),
    aheadDays: config.storage.partitionPrecreateDays,
    retentionDays: config.storage.retentionDays,
    idempotencyTtlHours: config.storage.idempotencyTtlHours,
    requireArchive: config.archive !== undefined,
  };
}

/** Daily partition name for a UTC day: records_20261126. */
export const partitionName = (dayStartMs: number): string =>
  `records_${new Date(dayStartMs).toISOString().slice(0, 10).replaceAll('-', '')}`;

const startOfUtcDay = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;

/** PostgreSQL's `now()` in epoch milliseconds. */
async function databaseNow(q: SessionQuery): Promise<number> {
  const { rows } = await q('SELECT (extract(epoch FROM now()) * 1000)::float8 AS ms');
  return Number(rows[0]?.ms);
}

interface SessionClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
}

type SessionQuery = (sql: string, params?: unknown[]) => ReturnType<SessionClient['query']>;

const DELETE_BATCH = 10_000;

/**
 * Creates the daily partitions the accepted time window needs (and `aheadDays` more), retires those past
 * retention together with their id-registry rows, and forgets expired idempotency keys. Idempotent, and safe to
 * run from every pod at once (a session advisory lock serialises them).
 *
 * Written so that it never blocks traffic on `records`: a partition is created as a plain table and then
 * ATTACHed (SHARE UPDATE EXCLUSIVE on the parent, which neither reads nor inserts wait for), retired with
 * DETACH … CONCURRENTLY before it is dropped, every statement runs under a lock_timeout, and deletes go in
 * batches in their own transactions.
 *
 * "Today" is PostgreSQL's clock unless a caller (a test of another day) passes `nowMs`: every pod computing it and
 * the retention cutoff from its own clock would let one skewed node create the wrong days or drop the wrong ones.
 */
export async function maintainPartitions(
  db: Knex,
  plan: PartitionPlan,
  nowMs?: number,
  signal?: AbortSignal,
): Promise<MaintenanceReport> {
  return maintenanceSession(db, MAINTENANCE_LOCK_TIMEOUT_MS, async (q) => {
    const timescale = await isHypertable(q);
    const dropped: string[] = [];
    const awaitingArchive: string[] = [];
    let idsDeleted = 0;
    const now = nowMs ?? (await databaseNow(q));
    const today = startOfUtcDay(now);
    // Never a day that may still take writes, whatever RETENTION_DAYS says (config refuses such a value; a plan
    // built by hand must not get round it either): only days wholly before the oldest accepted timestamp.
    const cutoff = Math.min(today - plan.retentionDays * DAY_MS, today - plan.pastDays * DAY_MS);
    const existing = timescale ? [] : await partitionsOf(q);
    const created = await createMissing(q, plan, today, timescale, new Set(existing));
    if (!timescale) {
      if (plan.retentionDays > 0) {
        const droppable = plan.requireArchive ? await archivedPartitions(q) : undefined;
        for (const name of existing) {
          const day = dayOfPartition(name);
          if (day === undefined || day + DAY_MS > cutoff) continue;
          if (droppable !== undefined && !droppable.has(name)) {
            awaitingArchive.push(name);
            continue;
          }
          await detach(q, name);
          await q(`DROP TABLE ${name}`);
          dropped.push(name);
        }
      }
    } else if (plan.retentionDays > 0 && !plan.requireArchive) {
      // The archiver reads daily partitions; hypertable chunks are not archived, so with S3 nothing is dropped.
      await q(`SELECT drop_chunks('records', older_than => make_interval(days => $1))`, [plan.retentionDays]);
    }
    // With an archive the registry keeps every id: a client id of an archived record stays a duplicate.
    if (plan.retentionDays > 0 && !plan.requireArchive) {
      idsDeleted = await deleteInBatches(
        q,
        signal,
        // The time condition is repeated outside the subquery so that every batch's join reads through the BRIN
        // index too, instead of scanning the whole registry once per batch (measured in docs/storage.md).
        `DELETE FROM record_ids WHERE "timestamp" < $1
           AND id IN (SELECT id FROM record_ids WHERE "timestamp" < $1 LIMIT ${DELETE_BATCH})`,
        [new Date(cutoff).toISOString()],
      );
    }
    const keysDeleted = await deleteInBatches(
      q,
      signal,
      `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) AND key IN (
         SELECT key FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) LIMIT ${DELETE_BATCH})`,
      [plan.idempotencyTtlHours],
    );
    return {
      created,
      dropped,
      idempotencyKeysDeleted: keysDeleted,
      registryRowsDeleted: idsDeleted,
      timescale,
      awaitingArchive,
    };
  });
}

/**
 * Only the first step of `maintainPartitions`: the missing days of the write window (what the first writes need),
 * under the same advisory lock, waiting for it at most `lockTimeoutMs`. No retention, no deletes: a pod's start
 * waits for this step alone (`schedulePartitionMaintenance`).
 */
export async function createWindowPartitions(
  db: Knex,
  plan: PartitionPlan,
  { nowMs, lockTimeoutMs = MAINTENANCE_LOCK_TIMEOUT_MS }: { nowMs?: number; lockTimeoutMs?: number } = {},
): Promise<string[]> {
  return maintenanceSession(db, lockTimeoutMs, async (q) => {
    const timescale = await isHypertable(q);
    const today = startOfUtcDay(nowMs ?? (await databaseNow(q)));
    return createMissing(q, plan, today, timescale, new Set(timescale ? [] : await partitionsOf(q)));
  });
}

/**
 * Records the plan's window for `ds_ensure_record_partition` (migration 0010), then creates the window's missing
 * days through `ds_create_record_partition`, the one definition of a daily partition (name, bounds, grants).
 */
async function createMissing(
  q: SessionQuery,
  plan: PartitionPlan,
  today: number,
  timescale: boolean,
  existing: ReadonlySet<string>,
): Promise<string[]> {
  await q(
    `INSERT INTO record_partition_window (past_days, ahead_days) VALUES ($1, $2)
     ON CONFLICT (only_row) DO UPDATE SET past_days = excluded.past_days, ahead_days = excluded.ahead_days,
       updated_at = now()
     WHERE (record_partition_window.past_days, record_partition_window.ahead_days) IS DISTINCT FROM
           (excluded.past_days, excluded.ahead_days)`,
    [plan.pastDays, plan.aheadDays],
  );
  const created: string[] = [];
  if (timescale) return created;
  for (let day = today - (plan.pastDays + 1) * DAY_MS; day <= today + plan.aheadDays * DAY_MS; day += DAY_MS) {
    if (existing.has(partitionName(day))) continue;
    // Null when a write's on-demand creation (or another maintainer) made it meanwhile.
    const { rows } = await q('SELECT ds_create_record_partition($1::date) AS name', [
      new Date(day).toISOString().slice(0, 10),
    ]);
    const name = rows[0]?.name;
    if (typeof name === 'string') created.push(name);
  }
  return created;
}

/**
 * Runs `work` on a connection of its own, as the owner of `records`, holding the maintenance advisory lock, with
 * every statement's lock wait (the advisory lock's too) bounded by `lockTimeoutMs`.
 */
async function maintenanceSession<T>(db: Knex, lockTimeoutMs: number, work: (q: SessionQuery) => Promise<T>) {
  const client = (await db.client.acquireConnection()) as SessionClient;
  const q: SessionQuery = (sql, params = []) => client.query(sql, params);
  let roleSet = false;
  try {
    roleSet = await actAsOwner(q);
    await q(`SET lock_timeout = '${Math.max(1, Math.round(lockTimeoutMs))}ms'`);
    await q('SELECT pg_advisory_lock($1)', [MAINTENANCE_LOCK]);
    try {
      return await work(q);
    } finally {
      await q('SELECT pg_advisory_unlock($1)', [MAINTENANCE_LOCK]);
    }
  } finally {
    await q('RESET lock_timeout').catch(() => undefined);
    // The connection goes back to the pool: it must not stay the owner. If the reset fails, close it instead
    // (knex then discards it) rather than hand an owner's session to the next query.
    if (roleSet) await q('RESET ROLE').catch(() => (client as { end?: () => unknown }).end?.());
    await db.client.releaseConnection(client);
  }
}

/** Maintenance was refused because the connected role may not act as the owner of `records` (e.g. ds_ingest). */
export class MaintenancePrivilegeError extends Error {
  readonly role: string;
  readonly owner: string;

  constructor(role: string, owner: string) {
    super(
      `role ${role} may not maintain partitions: records is owned by ${owner} and ${role} is not a member of it. ` +
        `Run maintenance as a member of ${owner} (dist/migrate.mjs --maintain-only, docs/security.md).`,
    );
    this.name = 'MaintenancePrivilegeError';
    this.role = role;
    this.owner = owner;
  }
}

/**
 * Partitions are created, attached and dropped as the owner of `records` (ds_migrate once migration 0007 ran):
 * only an owner may ATTACH and DROP, and a partition owned by the login user that happened to run maintenance
 * could not be dropped by the next one. Returns whether it switched roles (to be reset); throws
 * `MaintenancePrivilegeError` before touching anything when the session may not become the owner.
 */
async function actAsOwner(q: SessionQuery): Promise<boolean> {
  const { rows } = await q(`
    SELECT current_user AS me, pg_get_userbyid(c.relowner) AS owner, pg_has_role(c.relowner, 'MEMBER') AS member
    FROM pg_class c WHERE c.oid = 'records'::regclass`);
  const row = rows[0];
  if (row === undefined) throw new Error('records does not exist: run the migrations first');
  const me = String(row.me);
  const owner = String(row.owner);
  if (me === owner) return false;
  if (row.member !== true) throw new MaintenancePrivilegeError(me, owner);
  try {
    await q(`SET ROLE "${owner.replaceAll('"', '""')}"`);
  } catch (error) {
    // PostgreSQL 16 can grant membership without the right to SET ROLE (GRANT … WITH SET FALSE).
    if ((error as { code?: unknown }).code === '42501') throw new MaintenancePrivilegeError(me, owner);
    throw error;
  }
  return true;
}

/** Partitions whose archive is verified and which no restore holds: the only ones retention may drop with S3. */
async function archivedPartitions(q: SessionQuery): Promise<Set<string>> {
  const { rows } = await q(`
    SELECT 'records_' || to_char(day, 'YYYYMMDD') AS name FROM archive_days
    WHERE status = 'verified' AND (hold_until IS NULL OR hold_until <= now())`);
  return new Set(rows.map((row) => String(row.name)));
}

/** What retention does in this deployment, said once at start (issue 14: no silent change of behaviour). */
export function describeRetention(plan: PartitionPlan): string {
  if (plan.retentionDays === 0) return 'retention off (RETENTION_DAYS=0): every partition is kept';
  return plan.requireArchive
    ? `retention drops partitions older than ${plan.retentionDays} days only once their S3 archive is verified; their ids stay registered`
    : `S3_BUCKET is not set: retention drops partitions older than ${plan.retentionDays} days without archiving them, and forgets their ids`;
}

/** DETACH CONCURRENTLY, finishing a detach that an earlier run left pending. */
async function detach(q: (sql: string) => Promise<unknown>, name: string): Promise<void> {
  try {
    await q(`ALTER TABLE records DETACH PARTITION ${name} CONCURRENTLY`);
  } catch (error) {
    if (!/pending detach/i.test(String(error))) throw error;
    await q(`ALTER TABLE records DETACH PARTITION ${name} FINALIZE`);
  }
}

/** Deletes batch after batch until one comes back short, or `signal` is aborted (the next run goes on). */
async function deleteInBatches(
  q: (sql: string, params: unknown[]) => Promise<{ rowCount: number | null }>,
  signal: AbortSignal | undefined,
  sql: string,
  params: unknown[],
): Promise<number> {
  let total = 0;
  for (;;) {
    if (signal?.aborted) return total;
    const { rowCount } = await q(sql, params);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < DELETE_BATCH) return total;
  }
}

const LIST_PARTITIONS_SQL = `
  SELECT c.relname AS name FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_class p ON p.oid = i.inhparent
  WHERE p.relname = 'records' AND p.relnamespace = current_schema()::regnamespace
  ORDER BY c.relname`;

/** Names of the existing daily partitions of `records`. */
export async function listPartitions(db: Knex): Promise<string[]> {
  const result = await db.raw(LIST_PARTITIONS_SQL);
  return (result.rows as Array<{ name: string }>).map((row) => row.name);
}

async function partitionsOf(q: SessionQuery): Promise<string[]> {
  const { rows } = await q(LIST_PARTITIONS_SQL);
  return rows.map((row) => String(row.name));
}

function dayOfPartition(name: string): number | undefined {
  const match = /^records_(\d{4})(\d{2})(\d{2})$/.exec(name);
  return match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) : undefined;
}

async function isHypertable(q: SessionQuery): Promise<boolean> {
  const { rows } = await q(`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND EXISTS (SELECT 1 FROM pg_class WHERE relname = 'records' AND relkind = 'r') AS hyper`);
  return Boolean(rows[0]?.hyper);
}
/**
 * Keeps partitions ahead in the background: first only the missing days of the write window
 * (`createWindowPartitions`, what the first writes need), then the whole `maintainPartitions` right after it and
 * every `intervalMs`. `firstRun` resolves once that first step is done, or after `firstStepMs` whatever it is
 * doing (waiting for another pod's run, a slow database): a start waits that long at most, and a write that still
 * finds no partition creates its day itself (`ds_ensure_record_partition`). A failure is logged and the whole run
 * retried after `retryMs`: a database that is down when the function starts must not leave it without partitions
 * for an hour, nor keep it from starting. A role without the privilege (ds_ingest) is logged once and the
 * schedule ends. `stop()` schedules nothing more, ends a run under way after its current statement (between delete
 * batches), and resolves once it has ended.
 */
export function schedulePartitionMaintenance(
  db: Knex,
  plan: PartitionPlan,
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void },
  {
    intervalMs = 3_600_000,
    retryMs = 15_000,
    firstStepMs = 5_000,
  }: { intervalMs?: number; retryMs?: number; firstStepMs?: number } = {},
): { stop(): Promise<void>; firstRun: Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // Ends a run between its delete batches: a stopping pod does not wait for a big registry's whole cleanup.
  const stopping = new AbortController();
  // The run under way, if any: stop() waits for it, so that a closing pool (or the next test) never meets a
  // maintenance run still deleting rows in the background.
  let inFlight: Promise<void> = Promise.resolve();
  log.info(
    { retention_days: plan.retentionDays, require_archive: plan.requireArchive === true },
    describeRetention(plan),
  );
  const next = (delay: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = run();
    }, delay);
    timer.unref();
  };
  const failed = (error: unknown): void => {
    if (error instanceof MaintenancePrivilegeError) {
      // Expected where the function runs as ds_ingest: the migrate job's schedule maintains partitions instead
      // (knative/maintenance-cronjob.yaml). Said once, and no retry: retrying cannot grant a privilege.
      log.warn(
        { role: error.role, owner: error.owner },
        `partition maintenance skipped in this process: ${error.message}`,
      );
      return;
    }
    if (stopped) return; // a run cut short by the stop (the pool closing under it) is not a failure to report
    log.warn({ err: error, retry_in_ms: retryMs }, 'partition maintenance failed; will retry');
    next(retryMs);
  };
  const run = async (): Promise<void> => {
    try {
      const report = await maintainPartitions(db, plan, undefined, stopping.signal);
      if (
        report.created.length + report.dropped.length + report.awaitingArchive.length > 0 ||
        report.idempotencyKeysDeleted > 0
      ) {
        log.info({ ...report }, 'partition maintenance');
      }
      next(intervalMs);
    } catch (error) {
      failed(error);
    }
  };
  const firstStep = (async () => {
    try {
      const created = await createWindowPartitions(db, plan, { lockTimeoutMs: firstStepMs });
      if (created.length > 0) log.info({ created }, 'partitions of the write window created');
      // Retention and the batched deletes may take long on a big registry: after the start, not before it.
      next(0);
    } catch (error) {
      failed(error);
    }
  })();
  inFlight = firstStep;
  const firstRun = new Promise<void>((resolve) => {
    const bound = setTimeout(() => {
      log.warn(
        { after_ms: firstStepMs },
        'partition maintenance still running at start; serving anyway (it goes on in the background, and a write for a missing day creates it)',
      );
      resolve();
    }, firstStepMs);
    void firstStep.finally(() => {
      clearTimeout(bound);
      resolve();
    });
  });
  return {
    stop: async () => {
      stopped = true;
      stopping.abort();
      clearTimeout(timer);
      await inFlight;
    },
    firstRun,
  };
}
