/**
 * What the chaos soak counts while it runs: every answer by operation and status class, latencies by phase, the
 * acknowledged ids (every id a 201 named), and each answer that breaks the HTTP contract — kept as a count and a
 * bounded list of examples, so that a long run's memory grows only with what was acknowledged.
 */
import { percentile } from '../processes.ts';

export type Operation =
  | 'post'
  | 'post-anonymous'
  | 'batch'
  | 'retry'
  | 'conflict'
  | 'get'
  | 'get-revalidate'
  | 'get-before-write'
  | 'get-after-write'
  | 'get-unknown'
  | 'list';

/** One request's outcome: an HTTP status, or 0 with why no answer came. */
export interface Answer {
  readonly status: number;
  readonly ms: number;
  /** `timeout` (no answer within the client's bound: a hang), or the connection error's code. */
  readonly error?: string;
}

const MAX_EXAMPLES = 50;

export interface PhaseFigures {
  readonly requests: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
}

export function createLedger() {
  const acknowledged = new Set<string>();
  const byOperation = new Map<Operation, Map<string, number>>();
  const latencies = new Map<string, number[]>();
  const byPhase = new Map<string, Map<string, number>>();
  const failures = new Map<string, number>();
  const examples: string[] = [];
  let requests = 0;
  let cut = 0;

  const classOf = (answer: Answer): string =>
    answer.status === 0
      ? `no answer (${answer.error ?? 'unknown'})`
      : [304, 404, 409, 429, 503].includes(answer.status)
        ? String(answer.status)
        : `${Math.floor(answer.status / 100)}xx`;

  return {
    acknowledged,
    /** Counts one answer of `operation` started during `phase`; `failure` says which invariant it breaks. */
    record(operation: Operation, phase: string, answer: Answer, failure?: string, detail = ''): void {
      requests++;
      const counts = byOperation.get(operation) ?? new Map<string, number>();
      byOperation.set(operation, counts);
      const key = classOf(answer);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      const inPhase = byPhase.get(phase) ?? new Map<string, number>();
      byPhase.set(phase, inPhase);
      inPhase.set(key, (inPhase.get(key) ?? 0) + 1);
      if (answer.status !== 0) {
        const list = latencies.get(phase) ?? [];
        latencies.set(phase, list);
        list.push(answer.ms);
      }
      if (failure !== undefined) {
        failures.set(failure, (failures.get(failure) ?? 0) + 1);
        if (examples.length < MAX_EXAMPLES) {
          examples.push(`${phase} ${operation}: ${failure} (${key} after ${answer.ms.toFixed(0)} ms) ${detail}`.trim());
        }
      }
    },
    /** A request left unanswered because its process was killed under it or was down: allowed, counted apart. */
    cut(): void {
      cut++;
    },
    acknowledge(ids: Iterable<string>): void {
      for (const id of ids) acknowledged.add(id);
    },
    summary() {
      const phases: Record<string, PhaseFigures> = {};
      for (const [phase, values] of [...latencies].sort(([a], [b]) => a.localeCompare(b))) {
        const round = (n: number) => Math.round(n * 10) / 10;
        phases[phase] = {
          requests: values.length,
          p50_ms: round(percentile(values, 50)),
          p99_ms: round(percentile(values, 99)),
          max_ms: round(values.reduce((a, b) => Math.max(a, b), 0)),
        };
      }
      const statuses: Record<string, Record<string, number>> = {};
      for (const [operation, counts] of byOperation) statuses[operation] = Object.fromEntries(counts);
      const statusesByPhase: Record<string, Record<string, number>> = {};
      for (const [phase, counts] of [...byPhase].sort(([a], [b]) => a.localeCompare(b))) {
        statusesByPhase[phase] = Object.fromEntries(counts);
      }
      return {
        requests,
        cut_by_kill: cut,
        acknowledged: acknowledged.size,
        statuses,
        statuses_by_phase: statusesByPhase,
        phases,
        failures: Object.fromEntries(failures),
        failure_examples: examples,
      };
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;
