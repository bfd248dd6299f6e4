/**
 * `npm run bench:tracing`: what tracing costs ingest. The `post-one` case of `npm run bench` (same wrk settings,
 * the window open until the relay has published), against a fresh `dist/ingest.mjs` per configuration:
 * `off` (no OTEL_EXPORTER_OTLP_ENDPOINT), `1%` (the deployed default, to the bench's OTLP sink) and `100%`
 * (OTEL_TRACES_SAMPLER_ARG=1). The three run BENCH_TRACING_ROUNDS times (2) in turn, to spread the machine's drift
 * over all of them; each figure is the mean over the rounds, reported as a ratio to `off`.
 */

import { helpFromHeader } from '../help.ts';
import { type Bench, httpCase, nextPhase, settings } from './cases.ts';
import { intEnv, runBench } from './lifecycle.ts';
import { type Entry, formatTable, round } from './report.ts';
import { luaScripts } from './wrk.ts';

helpFromHeader(import.meta.url);

const rounds = intEnv('BENCH_TRACING_ROUNDS', 2);
const configs = [
  { name: 'off', env: { OTEL_EXPORTER_OTLP_ENDPOINT: undefined } },
  { name: '1%', env: {} },
  { name: '100%', env: { OTEL_TRACES_SAMPLER_ARG: '1' } },
] as const;

await runBench({
  name: 'tracing',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 400),
  async body(ctx) {
    const b: Bench = { ctx, entries: [], options: {}, phase: 0 };
    const spans: Record<string, number> = {};
    for (let r = 1; r <= rounds; r++) {
      for (const config of configs) {
        const ingest = await ctx.startBundle('ingest', ctx.functionEnv(config.env));
        const posts = ctx.sink.posts;
        await httpCase(b, {
          name: `${config.name} round ${r}`,
          kind: 'service',
          url: `${ingest.url}/data`,
          script: luaScripts.postOne(ctx.runId, 'bench-tracing'),
          server: ingest.process,
          baseline: null,
          warmArgs: [nextPhase(b)],
          args: () => [nextPhase(b)],
        });
        await ingest.process.stop(25_000);
        spans[config.name] = (spans[config.name] ?? 0) + ctx.sink.posts - posts;
      }
    }
    const mean = (name: string, pick: (e: Entry) => number) => {
      const mine = b.entries.filter((e) => e.name.startsWith(`${name} `));
      return mine.reduce((sum, e) => sum + pick(e), 0) / Math.max(1, mine.length);
    };
    const figures = (name: string) => ({
      rps: mean(name, (e) => e.rps ?? 0),
      p99_ms: mean(name, (e) => e.p99_ms ?? 0),
      server_us: mean(name, (e) => e.cpu_us_per_request?.server ?? 0),
      machine_us: mean(name, (e) => e.cpu_us_per_request?.machine_share ?? 0),
    });
    const off = figures('off');
    const rows = configs.map(({ name }) => {
      const f = figures(name);
      return {
        tracing: name,
        rps: round(f.rps, 0),
        rps_ratio: round(f.rps / off.rps, 3),
        p99_ms: round(f.p99_ms, 2),
        p99_ratio: round(f.p99_ms / off.p99_ms, 3),
        srv_us: round(f.server_us, 0),
        srv_ratio: round(f.server_us / off.server_us, 3),
        mach_us: round(f.machine_us, 0),
        otlp_posts: (spans[name] ?? 0) / rounds,
      };
    });
    const columns = Object.keys(rows[0] ?? {});
    process.stdout.write(
      `\n${formatTable(
        columns,
        rows.map((r) => columns.map((c) => String(r[c as keyof typeof r]))),
      )}\n\n` +
        `wrk -t1 -c${settings.connections}, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per run, ` +
        `mean of ${rounds} rounds; ratios to tracing off; CPU µs per request.\n`,
    );
    return { settings, rounds, rows, entries: b.entries };
  },
});
