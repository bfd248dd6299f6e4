/**
 * `npm run bench`: the ceilings of the parts, a naive reference and the service, measured in one run on this
 * machine and printed as one table of ratios and CPU per request from that run, with issue 9's targets judged
 * on it (docs/benchmarks.md explains every column). The cases are in scripts/bench/cases.ts, the lifecycle in
 * scripts/bench/lifecycle.ts.
 *
 * `node scripts/bench.ts [ceilings] [naive] [service] [--dist DIR]`: a subset (default all) writes
 * `bench-results/<parts>.json` instead of `latest.json`; `--dist` (or BENCH_DIST) measures another build as it
 * is. Settings by env: BENCH_CONNECTIONS (32), BENCH_HIGH_CONNECTIONS (128), BENCH_SECONDS (8),
 * BENCH_WARMUP_SECONDS (2), BENCH_PG_CLIENTS (32), BENCH_STARTS (5), BENCH_DEADLINE_SECONDS (1200),
 * BENCH_KEEP_DB=1 (keep the database).
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Bench, ceilings, naive, service, settings } from './bench/cases.ts';
import { writeReport } from './bench/charts.ts';
import { CORES } from './bench/cost.ts';
import { ARGS, intEnv, runBench, say } from './bench/lifecycle.ts';
import { createBenchTables } from './bench/pg.ts';
import { compare, type Entry, reportHtml, startupLines, table, verdictLines, verdicts } from './bench/report.ts';
import { helpFromHeader } from './help.ts';
import { ROOT } from './processes.ts';

helpFromHeader(import.meta.url);

const PARTS = { ceilings, naive, service } as const;
const unknown = ARGS.filter((p) => !(p in PARTS));
if (unknown.length > 0) {
  process.stderr.write(`unknown part ${unknown.join(', ')}; use ${Object.keys(PARTS).join(', ')} [--dist DIR]\n`);
  process.exit(2);
}
const parts = ARGS.length === 0 ? (Object.keys(PARTS) as (keyof typeof PARTS)[]) : (ARGS as (keyof typeof PARTS)[]);
const name = ARGS.length === 0 ? 'latest' : parts.join('-');

await runBench({
  name,
  database: 'data_service_bench',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 1200),
  async body(ctx) {
    const entries: Entry[] = [];
    const b: Bench = { ctx, entries, options: {}, phase: 0 };
    await createBenchTables(ctx.pg, ctx.database);
    for (const part of parts) await PARTS[part](b);
    compare(entries);
    const targets = verdicts(entries);
    process.stdout.write(
      [
        '',
        table(entries),
        '',
        `wrk -t1, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per case; ${CORES} cores.`,
        'srv_us / mach_us: CPU µs per request of the serving process / of the machine share that served it (serving',
        'process + PostgreSQL + redis-server + Kafka broker trees); base_*: the same of the baseline; gen_us: wrk per',
        'request; POST windows last until the relay has published every event (drain); busy: cores busy machine-wide.',
        '',
        'Process start → first answer (own CPU):',
        startupLines(entries),
        '',
        'Targets (issue 9), ratios within this run:',
        verdictLines(targets),
        '',
      ].join('\n'),
    );
    const context = `${new Date().toISOString()}, ${CORES} cores, wrk -t1, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per case`;
    mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
    const written = await writeReport(
      join(ROOT, 'bench-results', name === 'latest' ? 'report' : `report-${name}`),
      reportHtml(entries, targets, context),
      say,
    );
    say(`report: ${written.join(', ')}`);
    return { settings, entries, targets };
  },
});
