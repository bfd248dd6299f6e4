/** Sending `RequestSpec`s with Node's fetch: the smoke plan's sequential steps, the prefill, /metrics samples. */
import { checkExchange, type Exchange, normalizeHeaders } from '../../load-tests/lib/checks.ts';
import type { LoadSettings } from '../../load-tests/lib/env.ts';
import { describeMemoryDrift, type ResidentMemory, residentMemory } from '../../load-tests/lib/metrics-text.ts';
import type { RecordBody } from '../../load-tests/lib/records.ts';
import { createRequestIds, headersOf, prefillRequests, type RequestSpec } from '../../load-tests/lib/requests.ts';
import { urlOf } from './vegeta.ts';

/** One request; a transport error comes back as status 0 with the error as body. */
export async function send(spec: RequestSpec, settings: LoadSettings): Promise<Exchange & { durationMs: number }> {
  const started = performance.now();
  try {
    const response = await fetch(urlOf(spec, settings), {
      method: spec.method,
      headers: headersOf(spec, settings),
      ...(spec.body !== undefined && { body: spec.body }),
      redirect: 'manual',
      signal: AbortSignal.timeout(settings.timeoutS * 1000),
    });
    const body = await response.text();
    return {
      status: response.status,
      headers: normalizeHeaders(Object.fromEntries(response.headers)),
      body,
      durationMs: performance.now() - started,
    };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return { status: 0, headers: {}, body: `${String(error)}${cause}`, durationMs: performance.now() - started };
  }
}

/** Writes the records reads will ask for, 100 a request; throws at the first refused batch. */
export async function prefill(records: readonly RecordBody[], settings: LoadSettings, runTag: string): Promise<void> {
  for (const spec of prefillRequests(records, 100, createRequestIds(runTag, 'prefill'))) {
    const answer = await send(spec, settings);
    const failures = checkExchange(spec, answer);
    if (failures.length > 0) throw new Error(`prefill failed: ${failures.join('; ')}`);
  }
}

/** Fails fast, with the fix, when nothing answers where the run would go. */
export async function checkReachable(settings: LoadSettings): Promise<void> {
  for (const base of new Set([settings.ingestUrl, settings.queryUrl])) {
    const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(3_000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (!ready) {
      throw new Error(`nothing ready at ${base}/readyz: start the service (npm start), pass --url, or add --start`);
    }
  }
}

/** Resident memory of the functions behind the run's URLs (one process each), from /metrics. */
export async function sampleMemory(settings: LoadSettings): Promise<ResidentMemory[]> {
  const samples: ResidentMemory[] = [];
  for (const base of new Set([settings.ingestUrl, settings.queryUrl])) {
    const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(3_000) }).then(
      (response) => (response.ok ? response.text() : ''),
      () => '',
    );
    samples.push(...residentMemory(text));
  }
  return samples;
}

export { describeMemoryDrift };
