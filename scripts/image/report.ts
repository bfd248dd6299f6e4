/**
 * What counts as passing, in one place for `npm run image:test` and test/integration/image.test.ts, and the
 * report both print.
 */

import { type ImageReport, QUEUE_PROXY_IDLE_MS } from './checks.ts';
import { median, mib } from './common.ts';
import type { FunctionName } from './containers.ts';

export type CheckGroup = 'migrate' | 'probes' | 'round trip' | 'keep-alive' | 'load' | 'memory' | 'drain';

export interface Verdict {
  readonly group: CheckGroup;
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
}

export function verdicts(report: ImageReport): Verdict[] {
  const out: Verdict[] = [];
  const add = (group: CheckGroup, check: string, ok: boolean, detail: unknown) => {
    out.push({ group, check, ok, detail: typeof detail === 'string' ? detail : JSON.stringify(detail) });
  };
  add(
    'migrate',
    'dist/migrate.mjs from the image exits 0',
    report.migrate.code === 0,
    report.migrate.messages.join('; '),
  );
  add('round trip', 'POST /data through ingest is 201', report.roundTrip.created === 201, report.roundTrip.created);
  add('round trip', 'GET /data/{id} through query is 200', report.roundTrip.read === 200, report.roundTrip.read);
  add(
    'round trip',
    'ingest relays the event to Kafka from inside the container',
    report.roundTrip.eventsPublished > 0,
    `data_service_events_published_total ${report.roundTrip.eventsPublished}`,
  );
  for (const fn of ['ingest', 'query'] as const satisfies readonly FunctionName[]) {
    const f = report.functions[fn];
    add(
      'probes',
      `${fn}: /healthz, /readyz and /metrics answer 200`,
      [f.probes.healthz, f.probes.readyz, f.probes.metrics].every((s) => s === 200),
      f.probes,
    );
    add('probes', `${fn}: PostgreSQL up from inside the container`, f.dependencies.postgres === 1, f.dependencies);
    add(
      'keep-alive',
      `${fn}: announces a keep-alive timeout above queue-proxy's ${QUEUE_PROXY_IDLE_MS / 1000} s`,
      f.keepAlive.announcedSeconds * 1000 > QUEUE_PROXY_IDLE_MS,
      `timeout=${f.keepAlive.announcedSeconds}`,
    );
    const past = report.idleMs > QUEUE_PROXY_IDLE_MS ? 'past' : 'short of';
    add(
      'keep-alive',
      `${fn}: a connection idle ${(report.idleMs / 1000).toFixed(1)} s (${past} queue-proxy's ${QUEUE_PROXY_IDLE_MS / 1000} s) stays open and is reused`,
      report.idleMs >= report.idleRequestedMs &&
        !f.keepAlive.closedWhileIdle &&
        f.keepAlive.reusedStatus === (fn === 'ingest' ? 201 : 200),
      f.keepAlive,
    );
    const peak = Math.max(f.memory.cgroupPeakBytes ?? 0, f.memory.sampledPeakWorkingSetBytes);
    add(
      'memory',
      `${fn}: cgroup peak below the ${mib(f.memory.limitBytes)} limit`,
      peak > 0 && peak < f.memory.limitBytes,
      mib(peak),
    );
    const d = f.drain;
    const expected = fn === 'ingest' ? 201 : 200;
    add(
      'drain',
      `${fn}: "draining" logged with the requests in flight`,
      d.drainingLog.in_flight === 5 && d.drainingLog.reason === 'SIGTERM',
      d.drainingLog,
    );
    add('drain', `${fn}: new connections refused while draining`, d.newConnection === 'ECONNREFUSED', d.newConnection);
    add(
      'drain',
      `${fn}: /readyz says 503 draining`,
      d.readiness.status === 503 && d.readiness.body.includes('draining'),
      d.readiness,
    );
    add(
      'drain',
      `${fn}: every request in flight answered ${expected}`,
      d.responses.length === 5 && d.responses.every((s) => s === expected),
      d.responses,
    );
    add(
      'drain',
      `${fn}: still running 300 ms after SIGTERM (it waits for its requests)`,
      d.runningAfterSignal,
      d.runningAfterSignal,
    );
    add(
      'drain',
      `${fn}: exit 0 within the grace period less queue-proxy's drain`,
      d.exitCode === 0 && d.exitedAfterMs < d.budgetMs && d.exitedAfterMs < d.drainTimeoutMs,
      `exit ${d.exitCode} after ${d.exitedAfterMs.toFixed(0)} ms, budget ${d.budgetMs} ms`,
    );
    add(
      'drain',
      `${fn}: "stopped" with completed and nothing abandoned`,
      d.stoppedLog?.completed === true && d.stoppedLog?.abandoned === 0,
      d.stoppedLog ?? 'no stopped line',
    );
  }
  for (const run of report.load) {
    add(
      'load',
      `${run.label}: requests served, no errors`,
      run.requests > 0 && run.non2xx === 0 && run.socketErrors === 0,
      `${run.requests} requests, non-2xx ${run.non2xx}, socket errors ${run.socketErrors}`,
    );
  }
  return out;
}

const ms = (value: number) => `${value.toFixed(0)} ms`;

export function formatReport(report: ImageReport): string {
  const lines: string[] = [
    `image ${report.image}, run ${report.run}, NODE_OPTIONS=${report.nodeOptions} (from the image), ${(report.durationMs / 1000).toFixed(0)} s`,
    '',
    'start → first /readyz 200 (median of runs; container start → "ready to serve" in brackets):',
  ];
  for (const start of report.starts) {
    const inside = start.insideMs.length > 0 ? ` [${ms(median(start.insideMs))}]` : '';
    lines.push(
      `  ${start.fn.padEnd(6)} ${start.mode.padEnd(24)} ${ms(median(start.toReadyMs)).padStart(7)}${inside}   runs: ${start.toReadyMs.map((v) => v.toFixed(0)).join(', ')}`,
    );
  }
  lines.push('', 'load (wrk, 1 thread, from the host on 127.0.0.1):');
  for (const run of report.load) {
    lines.push(
      `  ${run.label}: ${run.requestsPerSecond.toFixed(0)} req/s, p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, max ${run.maxMs.toFixed(0)} ms, non-2xx ${run.non2xx}, socket errors ${run.socketErrors}`,
    );
  }
  lines.push('', 'memory (whole life of the container, load included):');
  for (const fn of ['ingest', 'query'] as const) {
    const m = report.functions[fn].memory;
    lines.push(
      `  ${fn.padEnd(6)} cgroup peak ${m.cgroupPeakBytes === undefined ? 'n/a' : mib(m.cgroupPeakBytes)}, sampled working set ${mib(m.sampledPeakWorkingSetBytes)}, anon ${mib(m.sampledPeakAnonBytes)}, node VmHWM ${m.nodePeakRssBytes === undefined ? 'n/a' : mib(m.nodePeakRssBytes)} (limit ${mib(m.limitBytes)}, ${report.functions[fn].limits.cpus} CPU)`,
    );
  }
  lines.push('', 'CPU limit (CFS bandwidth control, whole life of the container):');
  for (const fn of ['ingest', 'query'] as const) {
    const c = report.functions[fn].cpu;
    lines.push(
      c === undefined
        ? `  ${fn.padEnd(6)} n/a`
        : `  ${fn.padEnd(6)} throttled in ${c.throttledPeriods} of ${c.periods} periods, ${(c.throttledMs / 1000).toFixed(1)} s in all`,
    );
  }
  for (const fn of ['ingest', 'query'] as const) {
    const errors = report.functions[fn].errors;
    if (errors.length > 0) lines.push('', `${fn}: first error log lines:`, ...errors.map((line) => `  ${line}`));
  }
  lines.push('', 'checks:');
  for (const verdict of verdicts(report)) {
    lines.push(`  ${verdict.ok ? 'ok  ' : 'FAIL'} [${verdict.group}] ${verdict.check}: ${verdict.detail}`);
  }
  return `${lines.join('\n')}\n`;
}
