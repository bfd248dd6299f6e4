/**
 * Load: arrival rate ramps from 0 to TARGET_RPS over RAMP, holds for DURATION, ramps down; READ_RATIO of the
 * requests read. Thresholds report the SLO without stopping the run.
 *   k6 run -e BASE_URL=https://data.example.com -e TARGET_RPS=2000 -e DURATION=10m load-tests/load.ts
 */
import { optionsFor, prefill, runMixed, type SetupData, settingsFor } from './lib/k6/adapter.ts';
import { planFor } from './lib/scenarios.ts';

const settings = settingsFor('load');
const plan = planFor('load', settings);

export const options = optionsFor(plan);

export function setup(): SetupData {
  return prefill(settings);
}

export default function (data: SetupData): void {
  runMixed(plan, settings, data);
}
