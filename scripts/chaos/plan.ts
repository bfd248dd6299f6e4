/**
 * The chaos soak's schedule, from its seed alone: which fault comes next, how long it is held and how long the
 * service runs undisturbed before it. A small PRNG (mulberry32) so that a seed reproduces the sequence; the
 * moments drift in a real run only by how long a fault takes to undo (a broker's restart is not ours to time).
 */

export type FaultKind =
  | 'kill-ingest'
  | 'kill-query'
  | 'kill-relay'
  | 'stop-ingest'
  | 'stop-query'
  | 'stop-relay'
  | 'restart-postgres'
  | 'redis-down'
  | 'kafka-down';

/** Every kind with its hold bounds (ms): kill → restart, SIGSTOP → SIGCONT, service down → up. */
export const FAULTS: Readonly<Record<FaultKind, readonly [number, number]>> = {
  'kill-ingest': [0, 1_500],
  'kill-query': [0, 1_500],
  'kill-relay': [0, 3_000],
  // Below the client's timeout: a stopped process is a slow one, and only an answer later than that is a hang.
  'stop-ingest': [500, 3_000],
  'stop-query': [500, 3_000],
  'stop-relay': [1_000, 5_000],
  'restart-postgres': [500, 3_000],
  'redis-down': [1_000, 5_000],
  'kafka-down': [2_000, 8_000],
};

/** What undoing a fault may add to its hold, as planned (a Kafka broker takes its time to start). */
const UNDO_ESTIMATE_MS: Readonly<Record<FaultKind, number>> = {
  'kill-ingest': 1_500,
  'kill-query': 1_500,
  'kill-relay': 1_500,
  'stop-ingest': 0,
  'stop-query': 0,
  'stop-relay': 0,
  'restart-postgres': 3_000,
  'redis-down': 1_000,
  'kafka-down': 15_000,
};

/** After a fault is undone, the phase measured as its recovery. */
export const RECOVERY_MS = 3_000;
const GAP_MS: readonly [number, number] = [1_000, 4_000];

export interface PlannedFault {
  readonly kind: FaultKind;
  /** Undisturbed time before it (after the previous fault's recovery). */
  readonly gapMs: number;
  readonly holdMs: number;
}

export interface Plan {
  readonly seed: number;
  readonly durationMs: number;
  /** Steady load before the first fault. */
  readonly warmupMs: number;
  readonly faults: readonly PlannedFault[];
}

/** mulberry32: 32 bits of state, plenty for a schedule; the same seed gives the same stream. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An integer in [min, max] from `random`. */
export const between = (random: () => number, [min, max]: readonly [number, number]): number =>
  min + Math.floor(random() * (max - min + 1));

/**
 * The faults of a run of `durationMs`: kinds dealt from a shuffled deck of all of them (reshuffled when empty, so
 * a long run meets each kind equally often and a short one meets many), each planned to end, with its recovery,
 * before the duration is up.
 */
export function planRun(seed: number, durationMs: number): Plan {
  const random = prng(seed);
  const warmupMs = Math.min(10_000, Math.round(durationMs * 0.08));
  const faults: PlannedFault[] = [];
  let deck: FaultKind[] = [];
  let at = warmupMs;
  for (;;) {
    if (deck.length === 0) deck = shuffle(Object.keys(FAULTS) as FaultKind[], random);
    const kind = deck[deck.length - 1] as FaultKind;
    const gapMs = faults.length === 0 ? 0 : between(random, GAP_MS);
    const holdMs = between(random, FAULTS[kind]);
    const end = at + gapMs + holdMs + UNDO_ESTIMATE_MS[kind] + RECOVERY_MS;
    if (end > durationMs) {
      // A kind too long for what is left does not end the plan while a shorter one might still fit.
      if (deck.length > 1 && kind === 'kafka-down') {
        deck.pop();
        continue;
      }
      break;
    }
    deck.pop();
    faults.push({ kind, gapMs, holdMs });
    at = end;
  }
  return { seed, durationMs, warmupMs, faults };
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** `60s`, `10m`, `1h` or plain seconds → ms; undefined when malformed or outside 10 s … 2 h. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 's' | 'm' | 'h'];
  return ms >= 10_000 && ms <= 7_200_000 ? Math.round(ms) : undefined;
}
