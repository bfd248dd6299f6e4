/**
 * `npm run bench:capacity`: the highest rate this machine sustains with p99 < 500 ms and errors < 0.1 %, for
 * write-only (POST one record) and for a 90/10 read/write mix, against the bundles started the deployed way.
 *
 * Per mix: vegeta constant-rate steps of BENCH_CAPACITY_STEP_SECONDS (8), doubling from
 * BENCH_CAPACITY_START_WRITE (250) / BENCH_CAPACITY_START_MIX (1000) req/s until a step fails, then bisecting until
 * the last pass and the first failure are within 10 % or BENCH_CAPACITY_MAX_STEPS (9) steps have run. A failing
 * step is repeated once and fails only when the repeat fails too (one bad step on a shared machine can be someone
 * else's burst). A step passes when p99 < 500 ms, errors < 0.1 % and ≥ 95 % of the asked rate was delivered.
 * Reads are `GET /data/{id}` over BENCH_CAPACITY_IDS (10000) prefilled records, 80 % on 20 % of the ids; every
 * write has a new id. docs/capacity.md turns the CPU per request at the best step into a per-pod figure.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { helpFromHeader } from '../help.ts';
import { ROOT, sleep } from '../processes.ts';
import { lineChart, page, writeReport } from './charts.ts';
import { intEnv, runBench, say } from './lifecycle.ts';
import { prefill, type RateOutcome, type Request, rateRun, recordBody, skewedIndex } from './rate.ts';
import { formatTable } from './report.ts';

helpFromHeader(import.meta.url);

const settings = {
  stepSeconds: intEnv('BENCH_CAPACITY_STEP_SECONDS', 8),
  startWrite: intEnv('BENCH_CAPACITY_START_WRITE', 250),
  startMix: intEnv('BENCH_CAPACITY_START_MIX', 1000),
  maxSteps: intEnv('BENCH_CAPACITY_MAX_STEPS', 9),
  ids: intEnv('BENCH_CAPACITY_IDS', 10_000),
  p99BudgetMs: 500,
  maxErrorRatio: 0.001,
};

const passes = (o: RateOutcome) =>
  o.p99Ms < settings.p99BudgetMs && o.errorRatio < settings.maxErrorRatio && o.throughput >= 0.95 * o.rate;

await runBench({
  name: 'capacity',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 480),
  async body(ctx) {
    const ingest = await ctx.startBundle('ingest', ctx.functionEnv());
    const query = await ctx.startBundle('query', ctx.functionEnv());
    const ids = Array.from({ length: settings.ids }, randomUUID);
    say(`prefilling ${ids.length} records for the reads`);
    await prefill(ingest.url, ids, 'bench-capacity-read', ctx.requestHeaders);
    let seq = 0;
    const write = (): Request => ({
      method: 'POST',
      url: `${ingest.url}/data`,
      body: recordBody(randomUUID(), 'bench-capacity', seq++),
    });
    const read = (): Request => ({ method: 'GET', url: `${query.url}/data/${ids[skewedIndex(ids.length, 0.2, 0.8)]}` });

    const search = async (mix: 'write' | 'mix-90-10', start: number) => {
      const steps: Array<{ rate: number; pass: boolean; reads: number; outcome: RateOutcome }> = [];
      let [lo, hi, rate, confirming] = [0, Number.POSITIVE_INFINITY, start, false];
      while (steps.length < settings.maxSteps) {
        const total = Math.ceil(rate * settings.stepSeconds);
        const requests = Array.from({ length: total }, (_, i) =>
          mix === 'mix-90-10' && i % 10 !== 9 ? read() : write(),
        );
        say(`${mix}: ${rate} req/s for ${settings.stepSeconds} s`);
        const outcome = await rateRun({
          headers: ctx.requestHeaders,
          requests,
          rate,
          seconds: settings.stepSeconds,
          dir: ctx.tmp,
          name: `${mix}-${steps.length}`,
          maxWorkers: 2048,
          servers: { ingest: ingest.process.pid, query: query.process.pid },
        });
        const pass = passes(outcome);
        if (!pass && !confirming) {
          say(`  FAIL (p99 ${outcome.p99Ms} ms, ${outcome.throughput} ok/s): repeating the step once to confirm`);
          confirming = true;
          await sleep(3_000);
          continue;
        }
        confirming = false;
        say(
          `  ${pass ? 'pass' : 'FAIL'}: ${outcome.throughput} ok/s, p99 ${outcome.p99Ms} ms, errors ${outcome.errorRatio}`,
        );
        steps.push({ rate, pass, reads: requests.filter((r) => r.method === 'GET').length, outcome });
        if (pass) lo = Math.max(lo, rate);
        else hi = Math.min(hi, rate);
        if (hi !== Number.POSITIVE_INFINITY && ((lo > 0 && (hi - lo) / lo <= 0.1) || (lo === 0 && steps.length >= 2)))
          break;
        rate = hi === Number.POSITIVE_INFINITY ? rate * 2 : Math.round((lo + hi) / 2 || hi / 2);
        await sleep(3_000); // the relay drains the outbox, the processes settle
      }
      const best = steps.filter((s) => s.pass).sort((a, b) => b.rate - a.rate)[0];
      // CPU per request of each function, over the requests that function served.
      const per = (fn: 'ingest' | 'query', share: number) =>
        best === undefined || share === 0 ? null : Math.round((best.outcome.cpuUsPerRequest[fn] ?? 0) / share);
      const readShare = best === undefined ? 0 : best.reads / Math.ceil(best.rate * settings.stepSeconds);
      return {
        mix,
        max_rate: best?.rate ?? 0,
        first_failing_rate: hi === Number.POSITIVE_INFINITY ? null : hi,
        at_max: best && {
          p50_ms: best.outcome.p50Ms,
          p99_ms: best.outcome.p99Ms,
          error_ratio: best.outcome.errorRatio,
          in_flight_little: Math.round(best.rate * best.outcome.meanMs) / 1000,
          cpu_seconds: best.outcome.cost.cpuSeconds,
          ingest_cpu_us_per_write: per('ingest', 1 - readShare),
          query_cpu_us_per_read: per('query', readShare),
          machine_cpu_us_per_request: best.outcome.cpuUsPerRequest.machine_share,
        },
        steps: steps.map((s) => ({
          rate: s.rate,
          pass: s.pass,
          throughput: s.outcome.throughput,
          p50_ms: s.outcome.p50Ms,
          p99_ms: s.outcome.p99Ms,
          error_ratio: s.outcome.errorRatio,
          status_codes: s.outcome.statusCodes,
          error_samples: s.outcome.errorSamples,
          cpu_us_per_request: s.outcome.cpuUsPerRequest,
          busy_cores: s.outcome.cost.busyCores,
        })),
      };
    };
    const results = [await search('write', settings.startWrite)];
    await sleep(5_000);
    results.push(await search('mix-90-10', settings.startMix));
    const header = [
      'mix',
      'rate',
      'ok/s',
      'p50_ms',
      'p99_ms',
      'errors',
      'ingest_us',
      'query_us',
      'mach_us',
      'busy',
      'verdict',
    ];
    const rows = results.flatMap((r) =>
      r.steps.map((s) =>
        [r.mix, s.rate, s.throughput, s.p50_ms, s.p99_ms, `${(s.error_ratio * 100).toFixed(2)}%`]
          .concat([s.cpu_us_per_request.ingest ?? '-', s.cpu_us_per_request.query ?? '-'])
          .concat([s.cpu_us_per_request.machine_share ?? '-', s.busy_cores.toFixed(2), s.pass ? 'pass' : 'FAIL'])
          .map(String),
      ),
    );
    const summary = results.map(
      (r) =>
        `${r.mix}: max ${r.max_rate} req/s (first failing step ${r.first_failing_rate ?? 'none'}); at max: ${JSON.stringify(r.at_max)}`,
    );
    process.stdout.write(`\n${formatTable(header, rows)}\n\n${summary.join('\n')}\n`);
    const chart = lineChart({
      title: 'p99 against offered rate (vegeta constant-rate steps, in the order of the rate)',
      xLabel: 'offered rate, requests/s',
      yLabel: 'p99, ms (log)',
      logY: true,
      limit: { y: settings.p99BudgetMs, label: `${settings.p99BudgetMs} ms budget` },
      series: results.map((r) => ({
        name: r.mix,
        points: [...r.steps].sort((a, b) => a.rate - b.rate).map((s) => [s.rate, s.p99_ms] as const),
      })),
    });
    mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
    const written = await writeReport(
      join(ROOT, 'bench-results', 'capacity'),
      page(
        'npm run bench:capacity',
        `${new Date().toISOString()}; max rate per mix with p99 < ${settings.p99BudgetMs} ms`,
        [chart],
      ),
      say,
    );
    say(`report: ${written.join(', ')}`);
    return { settings, results };
  },
});
