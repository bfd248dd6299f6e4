import type { HttpResponse } from '#lib/http';

const READINESS_CACHE_MS = 1_000;

export interface Probes {
  /** `/healthz`: the process is alive. */
  health(): HttpResponse;
  /** `/readyz`: ready to serve; false while draining, and while `readiness` says no (cached for a second). */
  ready(): Promise<HttpResponse>;
  /** From now on `/readyz` answers 503 "draining" (SIGTERM). */
  drain(): void;
}

/** The Knative probes of one function; they never reach the handler. */
export function createProbes(readiness: (() => Promise<boolean>) | undefined): Probes {
  let draining = false;
  let cached: { at: number; ready: boolean } | undefined;
  const answer = (statusCode: number, status: string): HttpResponse => ({
    statusCode,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: `{"status":"${status}"}`,
  });
  const isReady = async (): Promise<boolean> => {
    if (readiness === undefined) return true;
    const now = Date.now();
    if (cached && now - cached.at < READINESS_CACHE_MS) return cached.ready;
    const ready = await readiness().catch(() => false);
    cached = { at: now, ready };
    return ready;
  };
  return {
    health: () => answer(200, 'ok'),
    async ready() {
      if (draining) return answer(503, 'draining');
      return (await isReady()) ? answer(200, 'ready') : answer(503, 'unavailable');
    },
    drain() {
      draining = true;
    },
  };
}
