export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before one trial call is let through. */
  readonly resetMs: number;
  readonly now?: () => number;
  readonly onStateChange?: (state: BreakerState) => void;
}

export interface CircuitBreaker {
  /** Runs `call` unless the circuit is open; any failure (or an open circuit) yields `fallback` instead. */
  run<T>(call: () => Promise<T>, fallback: T): Promise<T>;
  state(): BreakerState;
}

/**
 * A consecutive-failure circuit breaker. While open, calls cost nothing (no timeout is waited out); after
 * `resetMs` a single trial call decides between closing and another open period.
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const now = options.now ?? Date.now;
  let state: BreakerState = 'closed';
  let failures = 0;
  let openedAt = 0;
  let trialInFlight = false;

  const transition = (next: BreakerState) => {
    if (state === next) return;
    state = next;
    options.onStateChange?.(next);
  };

  return {
    async run(call, fallback) {
      if (state === 'open') {
        if (now() - openedAt < options.resetMs || trialInFlight) return fallback;
        transition('half-open');
      }
      if (state === 'half-open') {
        if (trialInFlight) return fallback;
        trialInFlight = true;
      }
      try {
        const result = await call();
        failures = 0;
        transition('closed');
        return result;
      } catch {
        failures++;
        if (state === 'half-open' || failures >= options.failureThreshold) {
          openedAt = now();
          transition('open');
        }
        return fallback;
      } finally {
        trialInFlight = false;
      }
    },
    state: () => state,
  };
}
