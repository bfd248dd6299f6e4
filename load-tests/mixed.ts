/**
 * Mixed read/write: a constant TARGET_RPS where READ_RATIO of the requests read (default 0.9: by id, and one in
 * ten a list page) and the rest write BATCH_SIZE records; p99 per kind in the summary (`{kind:read}`, `{kind:write}`).
 *   k6 run -e BASE_URL=https://data.example.com -e READ_RATIO=0.5 -e BATCH_SIZE=10 load-tests/mixed.ts
 */
import { optionsFor, prefill, runMixed, type SetupData, settingsFor } from './lib/k6/adapter.ts';
import { planFor } from './lib/scenarios.ts';

const settings = settingsFor('mixed');
const plan = planFor('mixed', settings);

export const options = optionsFor(plan);

export function setup(): SetupData {
  return prefill(settings);
}

export default function (data: SetupData): void {
  runMixed(plan, settings, data);
}
