/**
 * Spike: from 0 to TARGET_RPS in RAMP, held for DURATION, back to 0 in RAMP. Load shedding (429/503 with
 * Retry-After) is the designed answer and is counted in `shed`, not as an error; anything else that fails does.
 *   k6 run -e BASE_URL=https://data.example.com -e TARGET_RPS=5000 -e RAMP=10s -e DURATION=1m load-tests/spike.ts
 */
import { optionsFor, prefill, runMixed, type SetupData, settingsFor } from './lib/k6/adapter.ts';
import { planFor } from './lib/scenarios.ts';

const settings = settingsFor('spike');
const plan = planFor('spike', settings);

export const options = optionsFor(plan);

export function setup(): SetupData {
  return prefill(settings);
}

export default function (data: SetupData): void {
  runMixed(plan, settings, data);
}
