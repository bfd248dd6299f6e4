/** The chaos soak's schedule (scripts/chaos/plan.ts): a seed reproduces it, and it fits the run it plans. */
import { describe, expect, it } from '@jest/globals';
import { FAULTS, parseDuration, planRun, prng, RECOVERY_MS } from '../../scripts/chaos/plan.ts';

describe('chaos plan', () => {
  it('is the same for the same seed and differs between seeds', () => {
    expect(planRun(7, 600_000)).toEqual(planRun(7, 600_000));
    expect(planRun(7, 600_000).faults).not.toEqual(planRun(8, 600_000).faults);
    const a = prng(1);
    const b = prng(1);
    expect(Array.from({ length: 5 }, a)).toEqual(Array.from({ length: 5 }, b));
  });

  it('holds each fault within its bounds and ends, recoveries included, within the duration', () => {
    for (const seed of [1, 2, 3, 7, 42, 2 ** 32 - 1]) {
      for (const durationMs of [60_000, 600_000]) {
        const plan = planRun(seed, durationMs);
        expect(plan.faults.length).toBeGreaterThan(2);
        let at = plan.warmupMs;
        for (const fault of plan.faults) {
          const [min, max] = FAULTS[fault.kind];
          expect(fault.holdMs).toBeGreaterThanOrEqual(min);
          expect(fault.holdMs).toBeLessThanOrEqual(max);
          at += fault.gapMs + fault.holdMs + RECOVERY_MS;
        }
        expect(at).toBeLessThanOrEqual(durationMs);
      }
    }
  });

  it('meets every kind of fault in a long run', () => {
    const kinds = new Set(planRun(1, 600_000).faults.map((f) => f.kind));
    expect([...kinds].sort()).toEqual(Object.keys(FAULTS).sort());
  });

  it('parses durations and refuses what is malformed or out of bounds', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    for (const bad of ['', '5s', '3h', '10 minutes', '-1m', 'm']) expect(parseDuration(bad)).toBeUndefined();
  });
});
