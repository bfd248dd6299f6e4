/**
 * The staleness of replica reads: the lag tracker's bound (lib/db/replica-lag.ts) against a model of a primary that
 * commits and a replica that replays behind it — never below the true staleness, whatever the commits, the lag,
 * the pauses, the probe timing and the primary's clock offset; tight where it can be (caught up: the probe's age;
 * an idle primary is not mistaken for lag); the routing rule of lists; the Data-Staleness value.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { createLagTracker, createReplicaLagProbe, type Database, type LagSample, parseLsn } from '#lib/db';
import { chooseListDatabase, primaryLists, type RecordReader, replicaLists } from '#lib/records';
import { formatStaleness } from '../../functions/query/handler.ts';

describe('parseLsn', () => {
  it('orders WAL positions as PostgreSQL does', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('1/0') > parseLsn('0/FFFFFFFF')).toBe(true);
    expect(() => parseLsn('16-B374D848')).toThrow('not a pg_lsn');
  });
});

const sample = (at: number, primaryLsn: bigint, replica?: LagSample['replica'], primaryClockMs = at): LagSample => ({
  at,
  primaryLsn,
  primaryClockMs,
  ...(replica && { replica }),
});

describe('the lag tracker', () => {
  it('knows nothing before a probe has reached the replica', () => {
    const tracker = createLagTracker();
    expect(tracker.boundSeconds(1_000)).toBeUndefined();
    tracker.observe(sample(1_000, 100n));
    expect(tracker.boundSeconds(1_500)).toBeUndefined();
    expect(tracker.paused()).toBeUndefined();
  });

  it('a caught-up replica trails by the age of the probe, however old its last replayed commit', () => {
    const tracker = createLagTracker();
    // The last commit was an hour ago (an idle primary): now() - pg_last_xact_replay_timestamp() would say 3600 s.
    tracker.observe(sample(10_000, 500n, { replayedLsn: 500n, replayedCommitMs: 10_000 - 3_600_000, paused: false }));
    expect(tracker.boundSeconds(10_000)).toBe(0);
    expect(tracker.boundSeconds(10_400)).toBeCloseTo(0.4);
    expect(tracker.paused()).toBe(false);
  });

  it('a paused replica falls behind from the last probe at which the primary had written nothing it lacks', () => {
    const tracker = createLagTracker();
    tracker.observe(sample(0, 500n, { replayedLsn: 500n, replayedCommitMs: -3_600_000, paused: false }));
    tracker.observe(sample(1_000, 500n, { replayedLsn: 500n, replayedCommitMs: -3_600_000, paused: true }));
    // A write at 1.5 s; the replica stays at 500.
    tracker.observe(sample(2_000, 600n, { replayedLsn: 500n, replayedCommitMs: -3_600_000, paused: true }));
    expect(tracker.boundSeconds(2_000)).toBeCloseTo(1);
    tracker.observe(sample(3_000, 700n, { replayedLsn: 500n, replayedCommitMs: -3_600_000, paused: true }));
    expect(tracker.boundSeconds(3_500)).toBeCloseTo(2.5);
    expect(tracker.paused()).toBe(true);
  });

  it('under steady writes the last replayed commit dates the replay position between probes', () => {
    const tracker = createLagTracker();
    tracker.observe(sample(0, 1_000n, { replayedLsn: 900n, replayedCommitMs: -20, paused: false }));
    // Probes a second apart; the replica is 20 ms behind, so the previous probe's position is never replayed-to
    // exactly, yet the bound stays near 20 ms rather than a second.
    tracker.observe(sample(1_000, 2_000n, { replayedLsn: 1_990n, replayedCommitMs: 980, paused: false }));
    expect(tracker.boundSeconds(1_000)).toBeCloseTo(0.02);
  });

  it('maps commit times through the primary clock, whatever its offset from ours', () => {
    const tracker = createLagTracker();
    const offset = 5_000_000;
    tracker.observe(
      sample(1_000, 2_000n, { replayedLsn: 1_990n, replayedCommitMs: 700 + offset, paused: false }, 1_000 + offset),
    );
    expect(tracker.boundSeconds(1_000)).toBeCloseTo(0.3);
  });

  it('grows while probes fail, and a server not in recovery counts as current', () => {
    const tracker = createLagTracker();
    tracker.observe(sample(0, 10n, { replayedLsn: 10n, replayedCommitMs: null, paused: false }));
    tracker.observe(sample(1_000, 20n)); // the replica did not answer
    expect(tracker.boundSeconds(5_000)).toBeCloseTo(5);
    tracker.observe(sample(6_000, 30n, { replayedLsn: null, replayedCommitMs: null, paused: false }));
    expect(tracker.boundSeconds(6_000)).toBe(0);
  });

  it('does not know a replica further behind than its history with no replayed commit to date it', () => {
    const tracker = createLagTracker(10_000);
    tracker.observe(sample(0, 100n));
    for (let at = 1_000; at <= 30_000; at += 1_000) tracker.observe(sample(at, BigInt(100 + at)));
    tracker.observe(sample(31_000, 50_000n, { replayedLsn: 150n, replayedCommitMs: null, paused: false }));
    expect(tracker.boundSeconds(31_000)).toBeUndefined();
  });

  it('never reports less than the true staleness (model: commits, a replica replaying behind, probes)', () => {
    const scenario = fc.record({
      // Gaps between commits, ms; long gaps are idle spells.
      commitGaps: fc.array(fc.integer({ min: 0, max: 3_000 }), { minLength: 1, maxLength: 40 }),
      // Other WAL between commits (checkpoints, vacuum): raises the primary's position, holds no commit.
      noise: fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 40, maxLength: 40 }),
      // How far the replica's replay trails, per probe (ms; large values are pauses).
      lags: fc.array(fc.integer({ min: 0, max: 8_000 }), { minLength: 1, maxLength: 30 }),
      probeGaps: fc.array(fc.integer({ min: 200, max: 2_000 }), { minLength: 30, maxLength: 30 }),
      rtt: fc.integer({ min: 0, max: 30 }),
      clockOffset: fc.integer({ min: -1_000_000, max: 1_000_000 }),
      replicaFails: fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
    });
    fc.assert(
      fc.property(scenario, ({ commitGaps, noise, lags, probeGaps, rtt, clockOffset, replicaFails }) => {
        // Commit i becomes visible at commits[i].t with its commit record at commits[i].lsn.
        const commits: Array<{ t: number; lsn: bigint }> = [];
        let t = 0;
        let lsn = 0n;
        for (const [i, gap] of commitGaps.entries()) {
          t += gap;
          lsn += 10n + BigInt(noise[i] ?? 0);
          commits.push({ t, lsn });
        }
        const primaryLsnAt = (time: number) => commits.filter((c) => c.t <= time).at(-1)?.lsn ?? 0n;
        // The replica at `time` has replayed what the primary had at `time - lag` (replay never goes backwards).
        let replayedUpTo = -Infinity;
        const tracker = createLagTracker();
        let at = 0;
        for (const [i, lag] of lags.entries()) {
          at += probeGaps[i] ?? 1_000;
          const primaryReadAt = at + rtt / 2;
          const replicaReadAt = at + rtt;
          replayedUpTo = Math.max(replayedUpTo, replicaReadAt - lag);
          const replayed = commits.filter((c) => c.t <= replayedUpTo);
          tracker.observe({
            at,
            primaryLsn: primaryLsnAt(primaryReadAt),
            primaryClockMs: primaryReadAt + clockOffset,
            ...(!replicaFails[i] && {
              replica: {
                replayedLsn: primaryLsnAt(replayedUpTo),
                replayedCommitMs: replayed.length === 0 ? null : (replayed.at(-1)?.t ?? 0) + clockOffset,
                paused: false,
              },
            }),
          });
          // Asked a little later, as a request would: the oldest commit the replica lacks bounds from below.
          const now = replicaReadAt + 100;
          const missing = commits.find((c) => c.t <= now && c.t > replayedUpTo);
          const bound = tracker.boundSeconds(now);
          if (missing !== undefined && bound !== undefined) {
            expect(bound * 1000).toBeGreaterThanOrEqual(now - missing.t);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('the probe loop', () => {
  // Stand-ins for the two pools with canned answers: what is tested is the loop's own bookkeeping (the SQL meets
  // real servers in test/integration/read-replica.test.ts).
  const answering = (rows: object[]): Database => ({ raw: async () => ({ rows }) }) as unknown as Database;
  const hanging = { raw: () => new Promise(() => undefined) } as unknown as Database;
  const failing = {
    raw: async () => {
      throw new Error('connect ECONNREFUSED');
    },
  } as unknown as Database;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const primaryRow = { lsn: '0/100', clock_ms: Date.now() };

  it('bounds a caught-up replica by the age of its probes', async () => {
    const probe = createReplicaLagProbe({
      primary: answering([primaryRow]),
      replica: answering([{ lsn: '0/100', replayed_ms: null, paused: false }]),
      intervalMs: 20,
    });
    try {
      await sleep(100);
      expect(probe.boundSeconds()).toBeLessThan(1); // ~20 ms; generous for a loaded machine
      expect(probe.primaryReachable()).toBe(true);
      expect(probe.paused()).toBe(false);
    } finally {
      probe.close();
    }
  });

  it('a primary that refuses, or does not answer within five intervals, is out of reach', async () => {
    const refused = createReplicaLagProbe({ primary: failing, replica: answering([]), intervalMs: 20 });
    const frozen = createReplicaLagProbe({ primary: hanging, replica: answering([]), intervalMs: 20 });
    try {
      expect(frozen.primaryReachable()).toBe(true); // just asked
      await sleep(150);
      expect(refused.primaryReachable()).toBe(false);
      expect(frozen.primaryReachable()).toBe(false);
      expect(refused.boundSeconds()).toBeUndefined();
      expect(frozen.boundSeconds()).toBeUndefined();
    } finally {
      refused.close();
      frozen.close();
    }
  });

  it('a replica that stops answering leaves the bound growing from the last good probe', async () => {
    let replica = answering([{ lsn: '0/100', replayed_ms: null, paused: false }]);
    const probe = createReplicaLagProbe({
      primary: answering([primaryRow]),
      replica: { raw: (sql: string) => replica.raw(sql) } as unknown as Database,
      intervalMs: 20,
    });
    try {
      await sleep(60);
      replica = failing;
      await sleep(300);
      expect(probe.boundSeconds()).toBeGreaterThan(0.25);
      expect(probe.primaryReachable()).toBe(true);
    } finally {
      probe.close();
    }
  });
});

describe('where lists read', () => {
  it('the replica within the bound; else the primary, unless the primary is unreachable too', () => {
    expect(chooseListDatabase(0.5, true, 30)).toBe('replica');
    expect(chooseListDatabase(30, true, 30)).toBe('replica');
    expect(chooseListDatabase(30.001, true, 30)).toBe('primary');
    expect(chooseListDatabase(undefined, true, 30)).toBe('primary');
    expect(chooseListDatabase(120, false, 30)).toBe('replica');
    expect(chooseListDatabase(undefined, false, 30)).toBe('replica');
  });

  it('routes each list on the figures of the moment and counts them', () => {
    const reader = (name: string): RecordReader =>
      ({ findById: async () => undefined, list: async () => [], name }) as RecordReader;
    const [replica, primary] = [reader('replica'), reader('primary')];
    let bound: number | undefined = 0.2;
    const lists = replicaLists(replica, primary, { boundSeconds: () => bound, primaryReachable: () => true }, 5);
    const first = lists.route();
    expect(first.reader).toBe(replica);
    expect(first.stalenessSeconds()).toBe(0.2);
    bound = 6;
    // The bound is read when the answer is made, so a read that took long says so.
    expect(first.stalenessSeconds()).toBe(6);
    const second = lists.route();
    expect(second.reader).toBe(primary);
    expect(second.stalenessSeconds()).toBe(0);
    expect(lists.counts()).toEqual({ primary: 1, replica: 1 });
    expect(primaryLists(primary).route().stalenessSeconds()).toBe(0);
  });
});

describe('Data-Staleness', () => {
  it('is seconds rounded up to the millisecond, or unknown', () => {
    expect(formatStaleness(0)).toBe('0');
    expect(formatStaleness(0.1)).toBe('0.1');
    expect(formatStaleness(0.0001)).toBe('0.001');
    expect(formatStaleness(12.3456)).toBe('12.346');
    expect(formatStaleness(undefined)).toBe('unknown');
    expect(formatStaleness(Number.POSITIVE_INFINITY)).toBe('unknown');
  });
});
