/**
 * Smoke: one VU walks every route and every documented answer once (writes, reads, 304, two list pages,
 * Idempotency-Key replay and conflict, every problem+json error) and checks each response's contract.
 *   k6 run -e BASE_URL=https://data.example.com load-tests/smoke.ts
 */
import { optionsFor, runSmoke, settingsFor } from './lib/k6/adapter.ts';
import { planFor } from './lib/scenarios.ts';

const settings = settingsFor('smoke');
const plan = planFor('smoke', settings);

export const options = optionsFor(plan);

export default function (): void {
  runSmoke(plan, settings);
}
