/**
 * SLO: a constant TARGET_RPS for DURATION. Fails (non-zero exit; aborted early, after 10 s of data) when p99 of
 * http_req_duration reaches 500 ms or more than 0.1 % of requests fail, and when k6 had to drop iterations.
 *   k6 run -e BASE_URL=https://data.example.com -e TARGET_RPS=10000 -e DURATION=10m load-tests/slo.ts
 */
import { optionsFor, prefill, runMixed, type SetupData, settingsFor } from './lib/k6/adapter.ts';
import { planFor } from './lib/scenarios.ts';

const settings = settingsFor('slo');
const plan = planFor('slo', settings);

export const options = optionsFor(plan);

export function setup(): SetupData {
  return prefill(settings);
}

export default function (data: SetupData): void {
  runMixed(plan, settings, data);
}
