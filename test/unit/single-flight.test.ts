import { describe, expect, it, jest } from '@jest/globals';
import { createSingleFlight } from '#lib/cache';

/** Work that settles when the test says so. */
function deferred<T>() {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('createSingleFlight', () => {
  it('shares one execution among concurrent callers of one key', async () => {
    const flights = createSingleFlight<{ n: number }>();
    const gate = deferred<{ n: number }>();
    const work = jest.fn(() => gate.promise);
    const callers = Array.from({ length: 20 }, () => flights.run('k', work));
    expect(work).toHaveBeenCalledTimes(1);
    expect(flights.inFlight()).toBe(1);
    const value = { n: 1 };
    gate.resolve(value);
    const results = await Promise.all(callers);
    expect(results).toHaveLength(20);
    // Every caller gets the very same result object.
    for (const result of results) expect(result).toBe(value);
    expect(flights.inFlight()).toBe(0);
  });

  it('runs separate keys separately, each once', async () => {
    const flights = createSingleFlight<string>();
    const gates = { a: deferred<string>(), b: deferred<string>() };
    const workA = jest.fn(() => gates.a.promise);
    const workB = jest.fn(() => gates.b.promise);
    const a = [flights.run('a', workA), flights.run('a', workA)];
    const b = [flights.run('b', workB), flights.run('b', workB)];
    expect(flights.inFlight()).toBe(2);
    gates.b.resolve('B');
    expect(await Promise.all(b)).toEqual(['B', 'B']);
    // b settling does not settle or clear a.
    expect(flights.inFlight()).toBe(1);
    gates.a.resolve('A');
    expect(await Promise.all(a)).toEqual(['A', 'A']);
    expect(workA).toHaveBeenCalledTimes(1);
    expect(workB).toHaveBeenCalledTimes(1);
    expect(flights.inFlight()).toBe(0);
  });

  it('delivers a rejection to every waiter and clears the key, so the next call runs again', async () => {
    const flights = createSingleFlight<string>();
    const gate = deferred<string>();
    const failing = jest.fn(() => gate.promise);
    const callers = Array.from({ length: 5 }, () => flights.run('k', failing));
    const error = new Error('store down');
    gate.reject(error);
    const settled = await Promise.allSettled(callers);
    expect(settled.every((s) => s.status === 'rejected' && s.reason === error)).toBe(true);
    expect(failing).toHaveBeenCalledTimes(1);
    expect(flights.inFlight()).toBe(0);

    const retry = jest.fn(() => Promise.resolve('recovered'));
    expect(await flights.run('k', retry)).toBe('recovered');
    expect(retry).toHaveBeenCalledTimes(1);
  });

  it('does not cache results: a call after the flight landed runs the work again', async () => {
    const flights = createSingleFlight<number>();
    let runs = 0;
    const work = jest.fn(async () => ++runs);
    expect(await flights.run('k', work)).toBe(1);
    expect(await flights.run('k', work)).toBe(2);
    expect(work).toHaveBeenCalledTimes(2);
    expect(flights.inFlight()).toBe(0);
  });

  it('a caller arriving while the flight is settling joins it rather than starting another', async () => {
    const flights = createSingleFlight<string>();
    const gate = deferred<string>();
    const work = jest.fn(() => gate.promise);
    const first = flights.run('k', work);
    gate.resolve('v');
    // Same tick as the resolution: the flight has not been cleared yet.
    const second = flights.run('k', work);
    expect(await Promise.all([first, second])).toEqual(['v', 'v']);
    expect(work).toHaveBeenCalledTimes(1);
  });
});
