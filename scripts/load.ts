/**
 * `npm run load:<smoke|slo|soak|spike|mixed|max>`: the k6 scenarios of load-tests/ run locally with vegeta (and
 * wrk for `max`) against the service on loopback (default http://127.0.0.1:8080, the `npm start` gateway; or
 * --start to start one for the run). Results in load-results/<run>-<timestamp>/; exit 1 when a threshold of the
 * k6 script fails (for slo: p99 ≥ 500 ms or ≥ 0.1 % errors), 2 on bad settings.
 *
 *   node scripts/load.ts slo --rate 500 --duration 10s
 *   BASE_URL=http://127.0.0.1:8080 READ_RATIO=0.5 node scripts/load.ts mixed
 */
import { parseCli, USAGE } from './load/cli.ts';
import { describe, runLocal } from './load/runs.ts';
import { type StartedService, startService } from './load/service.ts';
import { say } from './load/tools.ts';

let options: ReturnType<typeof parseCli>;
try {
  options = parseCli(process.argv.slice(2), process.env);
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  if (process.argv.includes('--help')) process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

let service: StartedService | undefined;
let exitCode = 1;
const stopService = async () => {
  const started = service;
  service = undefined;
  await started?.stop();
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    void stopService().finally(() => process.exit(130));
  });
}
try {
  if (options.start) {
    service = await startService();
    const url = service.url;
    options = { ...options, settings: { ...options.settings, baseUrl: url, ingestUrl: url, queryUrl: url } };
  }
  const summary = await runLocal(options);
  process.stdout.write(`${describe(summary)}\n`);
  exitCode = summary.ok ? 0 : 1;
} catch (error) {
  process.stderr.write(`load:${options.run} failed: ${error instanceof Error ? error.message : String(error)}\n`);
} finally {
  await stopService();
}
process.exit(exitCode);
