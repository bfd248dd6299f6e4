/**
 * Soak: a moderate constant rate for a long time (default 200 requests/s for 1 h). Latency drift shows as the
 * `{phase:early}` and `{phase:late}` rows of http_req_duration in the summary (first and last fifth of the run);
 * memory drift as the functions' resident memory before and after, printed at teardown.
 *   k6 run -e BASE_URL=https://data.example.com -e TARGET_RPS=500 -e DURATION=4h load-tests/soak.ts
 */
import { optionsFor, prefill, reportMemory, runMixed, type SetupData, settingsFor } from './lib/k6/adapter.ts';
import { planFor } from './lib/scenarios.ts';

const settings = settingsFor('soak');
const plan = planFor('soak', settings);

export const options = optionsFor(plan);

export function setup(): SetupData {
  return prefill(settings);
}

export default function (data: SetupData): void {
  runMixed(plan, settings, data);
}

export function teardown(data: SetupData): void {
  reportMemory(settings, data);
}
