import { describe, expect, it } from '@jest/globals';
import { progress } from '../../scripts/progress.ts';

describe('progress', () => {
  it('estimates the time left from the rate so far, at most one line per interval', () => {
    let clock = 0;
    const lines: string[] = [];
    const p = progress('loading', 10_000_000, {
      unit: 'rows',
      everyMs: 1_000,
      write: (l) => lines.push(l),
      now: () => clock,
    });
    clock = 10_000;
    p.update(2_500_000);
    clock = 10_500;
    p.update(3_000_000); // within the interval: not printed
    clock = 40_000;
    p.update(10_000_000);
    p.finish('VACUUM next');
    expect(lines).toEqual([
      'loading: 2.5M rows / 10M rows (25 %), 10 s so far, ~30 s left',
      'loading: 10M rows / 10M rows (100 %), 40 s so far, ~0 s left',
      'loading: 10M rows in 40 s, VACUUM next',
    ]);
  });

  it('shows bytes in MiB and long times in minutes', () => {
    let clock = 0;
    const lines: string[] = [];
    const p = progress('Kafka jars', 44 * 2 ** 20, {
      unit: 'B',
      everyMs: 0,
      write: (l) => lines.push(l),
      now: () => clock,
    });
    clock = 100_000;
    p.update(11 * 2 ** 20);
    expect(lines).toEqual(['Kafka jars: 11.0 MiB / 44.0 MiB (25 %), 1 min 40 s so far, ~5 min 0 s left']);
  });
});
