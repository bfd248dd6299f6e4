/**
 * How stale a read replica may be, measured off the request path: a probe every second asks the primary where its
 * WAL ends and then the replica what it has replayed, and turns the two into one instant, `known`, before which
 * every commit of the primary is on the replica. A read of the replica at time T is then at most T − known behind
 * the primary. That bound is honest by construction: it grows while probes fail (nothing new is known), and it is
 * never made fresher than a probe proved.
 *
 * Why not `now() - pg_last_xact_replay_timestamp()` alone: on a primary with no writes the last replayed commit
 * can be hours old while the replica lacks nothing. The LSN comparison settles that case (caught up: `known` is the
 * probe's start), and only a replica that really lacks WAL falls back to what its replay position proves.
 */
import type { Database } from './database.ts';

/** What one probe saw; times are the caller's monotonic milliseconds (`performance.now()`). */
export interface LagSample {
  /** Taken before the primary was asked: every commit visible before it is at or below `primaryLsn`. */
  readonly at: number;
  readonly primaryLsn: bigint;
  /** The primary's own clock, read in the same statement as its LSN (commit timestamps are on this clock). */
  readonly primaryClockMs: number;
  /** Undefined when the replica could not be asked. */
  readonly replica?: {
    /** Null when the server is not in recovery (not a standby: it has every commit it serves). */
    readonly replayedLsn: bigint | null;
    /** `pg_last_xact_replay_timestamp()`, on the primary's clock; null before the first replayed commit. */
    readonly replayedCommitMs: number | null;
    readonly paused: boolean;
  };
}

export interface LagTracker {
  /** Adds a probe's result (the primary half alone when the replica could not be asked). */
  observe(sample: LagSample): void;
  /** Seconds by which a read of the replica at `now` may trail the primary; undefined when nothing is known yet. */
  boundSeconds(now: number): number | undefined;
  /** Whether the replica said its replay is paused, at the last probe that reached it. */
  paused(): boolean | undefined;
}

/**
 * The arithmetic of the bound, without I/O. `historyMs` is how far back primary positions are kept to date a
 * replay position; a replica further behind than that, with no replayed commit to date it by, is not known.
 */
export function createLagTracker(historyMs = 300_000): LagTracker {
  // The primary's WAL end at each probe, oldest first; positions only grow, so the list is sorted by both.
  const history: Array<{ at: number; lsn: bigint }> = [];
  let known: number | undefined;
  let paused: boolean | undefined;
  return {
    observe(sample) {
      history.push({ at: sample.at, lsn: sample.primaryLsn });
      while (history.length > 1 && (history[0]?.at ?? sample.at) < sample.at - historyMs) history.shift();
      const { replica } = sample;
      if (replica === undefined) return;
      paused = replica.paused;
      known = knownInstant(sample, replica, history);
    },
    boundSeconds(now) {
      return known === undefined ? undefined : Math.max(0, now - known) / 1000;
    },
    paused: () => paused,
  };
}

/**
 * The latest instant before which every commit is on the replica, from one sample: the probe's start when it has
 * replayed the primary's WAL end; otherwise the later of (a) the last probe at which the primary had not written
 * past the replayed position and (b) the last replayed commit's timestamp — a commit record written before it lies
 * below that commit's own, so it was replayed too. Undefined when neither dates the position.
 */
function knownInstant(
  sample: LagSample,
  replica: NonNullable<LagSample['replica']>,
  history: ReadonlyArray<{ at: number; lsn: bigint }>,
): number | undefined {
  const { replayedLsn, replayedCommitMs } = replica;
  if (replayedLsn === null || replayedLsn >= sample.primaryLsn) return sample.at;
  let best: number | undefined;
  for (let i = history.length - 1; i >= 0; i--) {
    const entry = history[i];
    if (entry !== undefined && entry.lsn <= replayedLsn) {
      best = entry.at;
      break;
    }
  }
  if (replayedCommitMs !== null) {
    // The primary's clock read after `at`: mapping the commit time through `at` can only make it earlier (safe).
    const committedAt = sample.at - Math.max(0, sample.primaryClockMs - replayedCommitMs);
    best = best === undefined ? committedAt : Math.max(best, committedAt);
  }
  return best;
}

/** `pg_lsn` text (`16/B374D848`) as a number that compares like the WAL position. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (match === null) throw new Error(`not a pg_lsn: ${text}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export interface ReplicaLagProbe {
  /** Seconds a replica read now may trail the primary (see `LagTracker.boundSeconds`); undefined when not known. */
  boundSeconds(): number | undefined;
  /** Whether the primary answered the last probe (and is not stuck on this one): lists may move to it only then. */
  primaryReachable(): boolean;
  /** Whether the replica's replay was paused at the last probe that reached it. */
  paused(): boolean | undefined;
  /** Stops probing; call before the pools are destroyed. */
  close(): void;
}

export interface ReplicaLagProbeOptions {
  readonly primary: Database;
  readonly replica: Database;
  /** Between the end of one probe and the start of the next; default 1000. */
  readonly intervalMs?: number;
  readonly logger?: { warn(obj: object, msg: string): void };
}

const PRIMARY_POSITION = `SELECT pg_current_wal_lsn()::text AS lsn,
  (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS clock_ms`;
// pg_is_wal_replay_paused() raises outside recovery, hence the CASE: a server that is not a standby is read as is.
const REPLICA_POSITION = `SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS lsn,
  (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::float8 AS replayed_ms,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused`;

/**
 * Probes the replica's lag every `intervalMs` (one statement on the primary, then one on the replica), starting
 * at once, so no request ever waits for it. Failures are logged once per outage and leave the bound growing.
 * One probe at a time and no client-side timeout: a probe stuck on a frozen server holds one connection and starts
 * no other (a timeout would abandon a connection per second to it), while the bound grows and lists move to the
 * primary; it resumes when that statement ends.
 */
export function createReplicaLagProbe(options: ReplicaLagProbeOptions): ReplicaLagProbe {
  const { primary, replica, logger } = options;
  const intervalMs = options.intervalMs ?? 1_000;
  const tracker = createLagTracker();
  let primaryUp = true;
  // When the statement on the primary in flight was sent: one that has not come back within a few intervals is
  // a primary out of reach (frozen, or a connection dead without a reset), not one to send lists to.
  let primaryAskedAt: number | undefined;
  const stuckMs = 5 * intervalMs;
  let failing = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const probeOnce = async (): Promise<void> => {
    const at = performance.now();
    primaryAskedAt = at;
    let position: { lsn: string; clock_ms: number } | undefined;
    try {
      position = (await primary.raw<{ rows: Array<{ lsn: string; clock_ms: number }> }>(PRIMARY_POSITION)).rows[0];
      primaryUp = true;
      primaryAskedAt = undefined;
    } catch (error) {
      primaryUp = false;
      primaryAskedAt = undefined;
      throw error;
    }
    if (position === undefined) return;
    const sample = { at, primaryLsn: parseLsn(position.lsn), primaryClockMs: position.clock_ms };
    let replayed: { lsn: string | null; replayed_ms: number | null; paused: boolean } | undefined;
    try {
      replayed = (
        await replica.raw<{ rows: Array<{ lsn: string | null; replayed_ms: number | null; paused: boolean }> }>(
          REPLICA_POSITION,
        )
      ).rows[0];
    } finally {
      tracker.observe(
        replayed === undefined
          ? sample
          : {
              ...sample,
              replica: {
                replayedLsn: replayed.lsn === null ? null : parseLsn(replayed.lsn),
                replayedCommitMs: replayed.replayed_ms,
                paused: replayed.paused,
              },
            },
      );
    }
  };

  let pausedSeen = false;
  const loop = (): void => {
    probeOnce()
      .then(
        () => {
          if (failing) logger?.warn({}, 'replica lag probe recovered');
          failing = false;
          // Paused replay is an operator's act (or a forgotten one) that no error reports: said once per pause.
          const paused = tracker.paused() === true;
          if (paused && !pausedSeen)
            logger?.warn({}, 'replica replay is paused: its lag grows until pg_wal_replay_resume()');
          pausedSeen = paused;
        },
        (error: unknown) => {
          // A probe cut short by shutdown (its pool destroyed) is no outage.
          if (!failing && !closed)
            logger?.warn({ err: error }, 'replica lag probe failed; the staleness bound grows until it succeeds');
          failing = true;
        },
      )
      .finally(() => {
        if (closed) return;
        timer = setTimeout(loop, intervalMs);
        timer.unref();
      });
  };
  loop();

  return {
    boundSeconds: () => tracker.boundSeconds(performance.now()),
    primaryReachable: () => primaryUp && (primaryAskedAt === undefined || performance.now() - primaryAskedAt < stuckMs),
    paused: () => tracker.paused(),
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
