/**
 * Progress of a long step with the time left: `loading rows: 3.2M / 10M (32 %), 41 s so far, ~87 s left`.
 * A line at most every `everyMs` (a terminal sees it rewritten in place), the estimate from the rate so far.
 */
export interface Progress {
  /** `done` units of the total are finished. */
  update(done: number): void;
  /** The step finished: one closing line with the time it took. */
  finish(note?: string): void;
}

const units = (n: number, unit: string): string => {
  if (unit === 'B') return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
  const short =
    n >= 1e6 ? `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(n);
  return unit === '' ? short : `${short} ${unit}`;
};

export const duration = (seconds: number): string =>
  seconds >= 90 ? `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s` : `${Math.round(seconds)} s`;

export function progress(
  label: string,
  total: number,
  options: { unit?: string; everyMs?: number; write?: (line: string) => void; now?: () => number } = {},
): Progress {
  const { unit = '', everyMs = 2_000, now = () => performance.now() } = options;
  const tty = options.write === undefined && process.stderr.isTTY === true;
  const write = options.write ?? ((line: string) => process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`));
  const began = now();
  let last = -Infinity;
  let done = 0;
  const line = (): string => {
    const seconds = (now() - began) / 1000;
    const share = total > 0 ? Math.min(done / total, 1) : 0;
    const left = share > 0 ? (seconds * (1 - share)) / share : undefined;
    const shown = `${label}: ${units(done, unit)} / ${units(total, unit)} (${Math.round(share * 100)} %), ${duration(seconds)} so far`;
    return left === undefined ? shown : `${shown}, ~${duration(left)} left`;
  };
  return {
    update(value) {
      done = value;
      if (now() - last < everyMs) return;
      last = now();
      write(line());
    },
    finish(note) {
      const seconds = (now() - began) / 1000;
      write(`${label}: ${units(done || total, unit)} in ${duration(seconds)}${note ? `, ${note}` : ''}`);
      if (tty) process.stderr.write('\n');
    },
  };
}
