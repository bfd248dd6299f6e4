import { describe, expect, it, jest } from '@jest/globals';
import { type BreakerState, createCircuitBreaker } from '#lib/cache';

const FALLBACK = 'fallback';
const ok = () => Promise.resolve('value');
const fail = () => Promise.reject(new Error('redis down'));

/** A breaker on a fake clock that records every state change. */
function setup(failureThreshold = 3, resetMs = 1_000) {
  let time = 10_000;
  const changes: BreakerState[] = [];
  const breaker = createCircuitBreaker({
    failureThreshold,
    resetMs,
    now: () => time,
    onStateChange: (state) => changes.push(state),
  });
  return {
    breaker,
    changes,
    advance: (ms: number) => {
      time += ms;
    },
    /** Runs `n` failing calls. */
    failTimes: async (n: number) => {
      for (let i = 0; i < n; i++) expect(await breaker.run(fail, FALLBACK)).toBe(FALLBACK);
    },
  };
}

/** A call that settles when the test says so. */
function deferred<T>() {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('createCircuitBreaker', () => {
  it('starts closed, passes calls through and returns their results', async () => {
    const { breaker, changes } = setup();
    const call = jest.fn(ok);
    expect(breaker.state()).toBe('closed');
    expect(await breaker.run(call, FALLBACK)).toBe('value');
    expect(call).toHaveBeenCalledTimes(1);
    expect(changes).toEqual([]);
  });

  it('answers the fallback for a failed call while staying closed below the threshold', async () => {
    const { breaker, failTimes, changes } = setup(3);
    await failTimes(2);
    expect(breaker.state()).toBe('closed');
    expect(changes).toEqual([]);
  });

  it('also treats a call that throws synchronously as a failure', async () => {
    const { breaker } = setup(1);
    const throwing = (): Promise<string> => {
      throw new Error('sync');
    };
    expect(await breaker.run(throwing, FALLBACK)).toBe(FALLBACK);
    expect(breaker.state()).toBe('open');
  });

  it('opens after exactly `failureThreshold` consecutive failures and reports it once', async () => {
    const { breaker, failTimes, changes } = setup(3);
    await failTimes(2);
    expect(breaker.state()).toBe('closed');
    await failTimes(1);
    expect(breaker.state()).toBe('open');
    expect(changes).toEqual(['open']);
  });

  it('counts consecutive failures only: a success in between starts the count again', async () => {
    const { breaker, failTimes } = setup(3);
    await failTimes(2);
    expect(await breaker.run(ok, FALLBACK)).toBe('value');
    await failTimes(2);
    expect(breaker.state()).toBe('closed');
    await failTimes(1);
    expect(breaker.state()).toBe('open');
  });

  it('while open, answers the fallback at once without calling, until resetMs has passed', async () => {
    const { breaker, failTimes, advance, changes } = setup(2, 1_000);
    await failTimes(2);
    const call = jest.fn(ok);
    for (let i = 0; i < 10; i++) expect(await breaker.run(call, FALLBACK)).toBe(FALLBACK);
    advance(999);
    expect(await breaker.run(call, FALLBACK)).toBe(FALLBACK);
    expect(call).not.toHaveBeenCalled();
    expect(breaker.state()).toBe('open');
    expect(changes).toEqual(['open']);
  });

  it('after resetMs lets exactly one trial call through (half-open) while it is in flight', async () => {
    const { breaker, failTimes, advance, changes } = setup(2, 1_000);
    await failTimes(2);
    advance(1_000);
    const trial = deferred<string>();
    const trialCall = jest.fn(() => trial.promise);
    const pending = breaker.run(trialCall, FALLBACK);
    expect(breaker.state()).toBe('half-open');
    expect(changes).toEqual(['open', 'half-open']);

    const others = jest.fn(ok);
    const results = await Promise.all(Array.from({ length: 5 }, () => breaker.run(others, FALLBACK)));
    expect(results).toEqual(Array(5).fill(FALLBACK));
    expect(others).not.toHaveBeenCalled();
    expect(trialCall).toHaveBeenCalledTimes(1);

    trial.resolve('trial value');
    expect(await pending).toBe('trial value');
  });

  it('closes when the trial succeeds, and then needs the full threshold of failures to open again', async () => {
    const { breaker, failTimes, advance, changes } = setup(3, 1_000);
    await failTimes(3);
    advance(1_500);
    expect(await breaker.run(ok, FALLBACK)).toBe('value');
    expect(breaker.state()).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
    const call = jest.fn(ok);
    expect(await breaker.run(call, FALLBACK)).toBe('value');
    expect(call).toHaveBeenCalledTimes(1);
    await failTimes(2);
    expect(breaker.state()).toBe('closed');
    await failTimes(1);
    expect(breaker.state()).toBe('open');
  });

  it('reopens for another full resetMs when the trial fails', async () => {
    const { breaker, failTimes, advance, changes } = setup(3, 1_000);
    await failTimes(3);
    advance(1_000);
    expect(await breaker.run(fail, FALLBACK)).toBe(FALLBACK);
    expect(breaker.state()).toBe('open');
    expect(changes).toEqual(['open', 'half-open', 'open']);

    // The new open period counts from the failed trial, not from the first opening.
    const call = jest.fn(ok);
    advance(999);
    expect(await breaker.run(call, FALLBACK)).toBe(FALLBACK);
    expect(call).not.toHaveBeenCalled();
    advance(1);
    expect(await breaker.run(call, FALLBACK)).toBe('value');
    expect(call).toHaveBeenCalledTimes(1);
    expect(breaker.state()).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('a single failed trial reopens even when the threshold is larger than one', async () => {
    const { breaker, failTimes, advance } = setup(5, 1_000);
    await failTimes(5);
    advance(1_000);
    await failTimes(1);
    expect(breaker.state()).toBe('open');
  });

  it('lets the next trial through after a trial settled (no stuck half-open state)', async () => {
    const { breaker, failTimes, advance } = setup(1, 100);
    await failTimes(1);
    for (let round = 0; round < 3; round++) {
      advance(100);
      const call = jest.fn(fail);
      expect(await breaker.run(call, FALLBACK)).toBe(FALLBACK);
      expect(call).toHaveBeenCalledTimes(1);
      expect(breaker.state()).toBe('open');
    }
  });

  it('works without onStateChange and on the real clock', async () => {
    const breaker = createCircuitBreaker({ failureThreshold: 1, resetMs: 60_000 });
    expect(await breaker.run(fail, FALLBACK)).toBe(FALLBACK);
    expect(breaker.state()).toBe('open');
    const call = jest.fn(ok);
    expect(await breaker.run(call, FALLBACK)).toBe(FALLBACK);
    expect(call).not.toHaveBeenCalled();
  });
});
