/** Coalesces concurrent calls for one key into a single execution whose result every caller shares. */
export interface SingleFlight<T> {
  run(key: string, work: () => Promise<T>): Promise<T>;
  readonly inFlight: () => number;
}

/** N concurrent misses on one key reach the backing store once per process. */
export function createSingleFlight<T>(): SingleFlight<T> {
  const pending = new Map<string, Promise<T>>();
  return {
    run(key, work) {
      const existing = pending.get(key);
      if (existing) return existing;
      const promise = work().finally(() => pending.delete(key));
      pending.set(key, promise);
      return promise;
    },
    inFlight: () => pending.size,
  };
}
