/**
 * Issue 12 item 8 — the chaos soak, one minute of it: `scripts/chaos.ts --duration 60s --seed 7` runs the deployed
 * bundles under mixed load while its schedule kills ingest, takes Kafka down, restarts PostgreSQL, stops query and
 * kills the separate relay; the invariants are read back from the JSON it writes, so a lost record, a 5xx other
 * than 503, a 404 after a 201 or a hang fails this test (docs/reliability.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from '@jest/globals';
import { ROOT, run } from '../../scripts/processes.ts';
import { warnIfBundlesStale } from './support.ts';

const SEED = 7;

interface ChaosResult {
  ok: boolean;
  invariants: Array<{ name: string; ok: boolean; detail: string }>;
  counts: Record<string, number>;
  failures: Record<string, number>;
  failure_examples: string[];
  faults: Array<{ kind: string }>;
  statuses: Record<string, Record<string, number>>;
}

it('a one-minute chaos soak loses nothing acknowledged and answers every request within the contract', async () => {
  warnIfBundlesStale();
  const started = performance.now();
  const result = await run(
    process.execPath,
    ['scripts/chaos.ts', '--duration', '60s', '--seed', String(SEED), '--dist', 'dist'],
    { timeoutMs: 170_000, env: process.env },
  );
  const output = `${result.stdout}\n${result.stderr.slice(-4000)}`;
  expect({ exitCode: result.exitCode, timedOut: result.timedOut }).toEqual({
    exitCode: expect.any(Number),
    timedOut: false,
  });
  const chaos = JSON.parse(readFileSync(join(ROOT, 'bench-results', `chaos-${SEED}.json`), 'utf8')) as ChaosResult;
  console.log(
    `chaos soak, 60 s, seed ${SEED}, ${((performance.now() - started) / 1000).toFixed(0)} s in all:\n${result.stdout}`,
  );

  // The schedule ran: the seed's faults were injected and undone, under a load that was acknowledged.
  expect(chaos.faults.map((f) => f.kind)).toEqual([
    'kill-ingest',
    'kafka-down',
    'restart-postgres',
    'stop-query',
    'kill-relay',
  ]);
  expect(chaos.counts.acknowledged).toBeGreaterThan(1_000);
  expect(chaos.failure_examples).toEqual([]);
  expect(chaos.invariants.filter((i) => !i.ok)).toEqual([]);
  expect(chaos.counts.lost_in_postgres).toBe(0);
  expect(chaos.counts.lost_on_kafka).toBe(0);
  expect(chaos.counts.stored_not_on_kafka).toBe(0);
  // Faults were felt: requests were refused with 503 or cut by a kill, and yet none of them broke the contract.
  const answers = Object.values(chaos.statuses).flatMap((counts) => Object.keys(counts));
  expect(answers.filter((k) => /^5xx|^no answer \(timeout\)/.test(k))).toEqual([]);
  expect(answers).toContain('503');
  expect(chaos.ok).toBe(true);
  expect(result.exitCode).toBe(0);
  expect(output).toContain('ok   every answer within the contract');
}, 180_000);
