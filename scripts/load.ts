/**
 * `npm run load:<smoke|slo|soak|spike|mixed|max>`: the k6 scenarios of load-tests/ run locally with vegeta (and
 * wrk for `max`) against the service on loopback (default http://127.0.0.1:8080, the `npm start` gateway; or
 * --start to start one for the run: `node scripts/start.ts` on a free port, with the environment's DATABASE_URL /
 * REDIS_URL / KAFKA_BROKERS, stopped with SIGTERM at the end). Results in load-results/<run>-<timestamp>/; exit 1
 * when a threshold of the k6 script fails (for slo: p99 ≥ 500 ms or ≥ 0.1 % errors), 2 on bad settings.
 *
 *   node scripts/load.ts slo --rate 500 --duration 10s
 *   BASE_URL=http://127.0.0.1:8080 READ_RATIO=0.5 node scripts/load.ts mixed
 */

import { exitOnHelp } from '#lib/runtime';
import { parseCli, USAGE } from './load/cli.ts';
import { describe, runLocal, say } from './load/runs.ts';
import { freePort, ROOT, type Started, startProcess, waitFor } from './processes.ts';

exitOnHelp(USAGE);

let options: ReturnType<typeof parseCli>;
try {
  options = parseCli(process.argv.slice(2), process.env);
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}

/** The service as `npm start` runs it, ready when it prints its ready line. */
async function startService(): Promise<{ url: string; service: Started; token: string | undefined }> {
  const port = await freePort();
  let out = '';
  const service = startProcess(process.execPath, [`${ROOT}/scripts/start.ts`], {
    // A log line per request would cost the run CPU and flood the terminal.
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    onStdout: (chunk) => {
      out = (out + chunk).slice(-4096);
    },
  });
  let exited = false;
  void service.exited.then(() => {
    exited = true;
  });
  await waitFor('the service to start', 90_000, () => {
    if (exited) throw new Error(`scripts/start.ts exited before it was ready:\n${service.tail()}`);
    return out.includes('Data service ready on') ? true : undefined;
  });
  const url = `http://127.0.0.1:${port}`;
  say(`service started on ${url} (scripts/start.ts, pid ${service.pid})`);
  // With its local issuer, the service prints a token for every source: the run's, unless TOKEN is set.
  return { url, service, token: /export TOKEN=(\S+)/.exec(out)?.[1] };
}

let service: Started | undefined;
const stop = () => service?.stop(40_000);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    void Promise.resolve(stop()).finally(() => process.exit(130));
  });
}
let exitCode = 1;
try {
  if (options.start) {
    const started = await startService();
    service = started.service;
    const url = started.url;
    const token = options.settings.token ?? started.token;
    options = { ...options, settings: { ...options.settings, baseUrl: url, ingestUrl: url, queryUrl: url, token } };
  }
  const summary = await runLocal(options);
  process.stdout.write(`${describe(summary)}\n`);
  exitCode = summary.ok ? 0 : 1;
} catch (error) {
  process.stderr.write(`load:${options.run} failed: ${error instanceof Error ? error.message : String(error)}\n`);
} finally {
  await stop();
}
process.exit(exitCode);
