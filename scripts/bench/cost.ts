/**
 * What a measured window cost the machine: CPU seconds of the serving process and of each backing service's
 * process trees (PostgreSQL's postmaster and every backend, redis-server, the Kafka broker JVM), read from
 * /proc/<pid>/stat before and after — with the reaped children's CPU, so backends that came and went still count —
 * plus the machine's busy cores and the serving process's peak RSS.
 */

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { procStat, procTable, rssMiB } from '../processes.ts';
import { kafka } from '../services/kafka.ts';
import { postgres } from '../services/postgres.ts';
import { redis } from '../services/redis.ts';

export const CORES = availableParallelism();

/** Where CPU goes: the serving process and the backing services, each with its process tree. */
export const GROUPS = ['server', 'postgres', 'redis', 'kafka'] as const;
export type Group = (typeof GROUPS)[number];
export type ByGroup = Record<Group, number>;

export interface Cost {
  readonly wallSeconds: number;
  readonly cpuSeconds: ByGroup;
  /** All groups together: the machine's share that served the load (the load generator excluded). */
  readonly machineShareSeconds: number;
  /** Cores busy machine-wide, other users included. */
  readonly busyCores: number;
  /** The highest VmRSS any one serving process reached (sampled every 200 ms). */
  readonly peakRssMiB: number;
  /** CPU seconds of each serving process's tree, by pid. */
  readonly byPid: Readonly<Record<number, number>>;
}

/** CPU seconds so far of each group's process trees (a process counts once however many roots reach it). */
function groupCpu(servers: readonly number[]): ByGroup & { byPid: Record<number, number> } {
  const table = procTable();
  const children = new Map<number, number[]>();
  for (const stat of table.values()) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat.pid]);
  const tree = (roots: readonly number[]) => {
    const seen = new Set<number>();
    const stack = [...roots];
    let seconds = 0;
    for (let pid = stack.pop(); pid !== undefined; pid = stack.pop()) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      seconds += table.get(pid)?.cpuSeconds ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    return seconds;
  };
  return {
    byPid: Object.fromEntries(servers.map((pid) => [pid, tree([pid])])),
    server: tree(servers),
    postgres: tree(postgres.pids()),
    redis: tree(redis.pids()),
    kafka: tree(kafka.pids()),
  };
}

function machineJiffies(): { busy: number; total: number } {
  const values = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((sum, v) => sum + v, 0);
  return { busy: total - (values[3] ?? 0) - (values[4] ?? 0), total };
}

/** Runs `work` and returns its result with what the window cost the serving processes `servers` and the rest. */
export async function measure<T>(servers: readonly number[], work: () => Promise<T>): Promise<Cost & { result: T }> {
  const cpu0 = groupCpu(servers);
  const m0 = machineJiffies();
  const began = performance.now();
  let peakRssMiB = 0;
  const sample = () => {
    for (const pid of servers) peakRssMiB = Math.max(peakRssMiB, rssMiB(pid));
  };
  sample();
  const sampler = setInterval(sample, 200);
  let result: T;
  try {
    result = await work();
  } finally {
    clearInterval(sampler);
  }
  const wallSeconds = (performance.now() - began) / 1000;
  const cpu1 = groupCpu(servers);
  const m1 = machineJiffies();
  const cpuSeconds = Object.fromEntries(GROUPS.map((g) => [g, cpu1[g] - cpu0[g]])) as ByGroup;
  return {
    result,
    wallSeconds,
    cpuSeconds,
    machineShareSeconds: GROUPS.reduce((sum, g) => sum + cpuSeconds[g], 0),
    busyCores: ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * CORES,
    peakRssMiB,
    byPid: Object.fromEntries(servers.map((pid) => [pid, (cpu1.byPid[pid] ?? 0) - (cpu0.byPid[pid] ?? 0)])),
  };
}

/** Samples a child's CPU every 100 ms while it runs; `seconds()` is the last reading (a load generator's cost). */
export function trackCpu(): { onSpawn: (pid: number) => void; seconds: () => number } {
  let last = 0;
  let timer: NodeJS.Timeout | undefined;
  return {
    onSpawn(pid) {
      timer = setInterval(() => {
        const stat = procStat(pid);
        if (stat === undefined) clearInterval(timer);
        else last = stat.cpuSeconds;
      }, 100);
      timer.unref();
    },
    seconds: () => {
      clearInterval(timer);
      return last;
    },
  };
}
