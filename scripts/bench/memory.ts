/**
 * Memory of a serving process under a bench (bench:list-bytes, bench:export): its resident set sampled while the
 * load runs, its own peak (VmHWM, which no sample can miss), and the query pod's memory limit beside them.
 */
import { podLimits } from '../image/containers.ts';
import { peakRssMiB, rssMiB } from '../processes.ts';
import { round } from './report.ts';

export interface MemoryReport {
  readonly idle_rss_mib: number;
  /** The highest VmRSS sampled while the load ran. */
  readonly sampled_peak_rss_mib: number;
  /** VmHWM at the end: the process's peak resident set since it started. */
  readonly peak_rss_mib: number;
  readonly pod_limit_mib: number;
  readonly under_pod_limit: boolean;
}

/** Samples the resident set of `pid` every `intervalMs` until `stop()`, which reports it. */
export function sampleMemory(pid: number, intervalMs = 20): { stop(): MemoryReport } {
  const idle = rssMiB(pid);
  let peak = idle;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const hwm = peakRssMiB(pid);
      const limit = podLimits('query').memoryBytes / 2 ** 20;
      return {
        idle_rss_mib: round(idle, 1),
        sampled_peak_rss_mib: round(Math.max(peak, rssMiB(pid)), 1),
        peak_rss_mib: round(hwm, 1),
        pod_limit_mib: limit,
        under_pod_limit: hwm < limit,
      };
    },
  };
}
