import { WriteAbandonedError } from '#lib/errors';
import type { WriteGuard } from './ports.ts';

/** One request's write guard, and the answer its client gets: the outcome, or a 503 once it is given up. */
export interface WriteDeadline extends WriteGuard {
  readonly signal: AbortSignal;
  /**
   * `write`'s outcome; or, as soon as the deadline passes or the client leaves while the write has not claimed its
   * commit, a `WriteAbandonedError` (503) — the write then rolls back (or is dropped from its queue), so a client
   * told "failed" never finds its records stored later. Once the commit is claimed, only the outcome answers.
   */
  settle<T>(write: Promise<T>): Promise<T>;
}

/**
 * The deadline of one write: `ms` from now, or earlier when `clientGone` aborts. Without it a write queued behind a
 * frozen database would commit whenever the database came back, long after its client was told it failed (and a
 * client that retried without an id would have its records stored twice).
 */
export function writeDeadline(ms: number, clientGone?: AbortSignal): WriteDeadline {
  const controller = new AbortController();
  let final = false;
  const timer = setTimeout(
    () => controller.abort(new WriteAbandonedError(`The write did not commit within ${ms} ms`)),
    ms,
  );
  const left = () => controller.abort(new WriteAbandonedError('The client closed the connection'));
  if (clientGone?.aborted) left();
  else clientGone?.addEventListener('abort', left, { once: true });
  const done = () => {
    clearTimeout(timer);
    clientGone?.removeEventListener('abort', left);
  };
  if (controller.signal.aborted) clearTimeout(timer);

  return {
    signal: controller.signal,
    claimCommit() {
      if (controller.signal.aborted) return false;
      final = true;
      return true;
    },
    settle(write) {
      return new Promise((resolve, reject) => {
        const abandon = () => {
          if (!final) reject(controller.signal.reason);
        };
        if (controller.signal.aborted) abandon();
        else controller.signal.addEventListener('abort', abandon, { once: true });
        const settled = () => {
          done();
          controller.signal.removeEventListener('abort', abandon);
        };
        write.then(
          (value) => {
            settled();
            resolve(value);
          },
          (error: unknown) => {
            settled();
            reject(error);
          },
        );
      });
    },
  };
}
