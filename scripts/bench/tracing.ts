/**
 * `npm run bench:tracing`: the cost of tracing on ingest (issue 6). POST one record with wrk, exactly as the
 * `post-one` case of `npm run bench` (1 thread, BENCH_CONNECTIONS 32, BENCH_WARMUP_SECONDS 2 + BENCH_SECONDS 8),
 * against a fresh `dist/ingest.mjs` per configuration:
 *
 * - `off`: no OTEL_EXPORTER_OTLP_ENDPOINT (the default: tracing off);
 * - `1%`: OTEL_TRACES_SAMPLER_ARG=0.01, exporting to a sink this script runs;
 * - `100%`: OTEL_TRACES_SAMPLER_ARG=1.
 *
 * The sink is a node:http server on 127.0.0.1 that accepts POST /v1/traces and answers 200 (it counts requests
 * and bytes). The three configurations run BENCH_TRACING_ROUNDS times (2) in turn, to spread the machine's
 * drift over all of them; each figure is the mean over the rounds, and each is reported as a ratio to `off`.
 * JSON in bench-results/tracing.json. Database data_service_bench_tracing, dropped at the end.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatTable, intEnv, runBench } from './harness.ts';
import { cpuSeconds, say } from './proc.ts';
import { round } from './report.ts';
import { luaScripts, wrk } from './wrk.ts';

const settings = {
  connections: intEnv('BENCH_CONNECTIONS', 32),
  seconds: intEnv('BENCH_SECONDS', 8),
  warmupSeconds: intEnv('BENCH_WARMUP_SECONDS', 2),
  rounds: intEnv('BENCH_TRACING_ROUNDS', 2),
};

const sink = { requests: 0, bytes: 0 };
const server = createServer((req, res) => {
  req.on('data', (chunk: Buffer) => {
    sink.bytes += chunk.length;
  });
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/v1/traces') sink.requests++;
    res.writeHead(req.method === 'POST' && req.url === '/v1/traces' ? 200 : 404, {
      'content-type': 'application/json',
    });
    res.end('{}');
  });
});
await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
const sinkPort = (server.address() as AddressInfo).port;

const configs = [
  { name: 'off', env: { OTEL_EXPORTER_OTLP_ENDPOINT: undefined } },
  { name: '1%', env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`, OTEL_TRACES_SAMPLER_ARG: '0.01' } },
  { name: '100%', env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`, OTEL_TRACES_SAMPLER_ARG: '1' } },
] as const;

try {
  await runBench({
    name: 'tracing',
    deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 300),
    async body(ctx) {
      let phase = 0;
      const samples: Record<string, unknown>[] = [];
      for (let roundNo = 1; roundNo <= settings.rounds; roundNo++) {
        for (const config of configs) {
          const ingest = await ctx.startBundle('ingest', ctx.functionEnv(config.env));
          const url = `http://127.0.0.1:${ingest.port}/data`;
          const script = luaScripts.postOne(ctx.runId, 'bench-tracing');
          const common = { url, script, connections: settings.connections, dir: ctx.tmp };
          say(`${config.name} (round ${roundNo}): ${settings.warmupSeconds} s warm-up + ${settings.seconds} s`);
          await wrk({ ...common, name: 'warm', seconds: settings.warmupSeconds, args: [++phase, 0] });
          const sink0 = { ...sink };
          const cpu0 = cpuSeconds(ingest.process.pid);
          const o = await wrk({ ...common, name: 'measured', seconds: settings.seconds, args: [++phase, 0] });
          const cpu = cpuSeconds(ingest.process.pid) - cpu0;
          await ingest.process.stop(15_000);
          const sample = {
            config: config.name,
            round: roundNo,
            rps: round(o.rps, 1),
            p50_ms: round(o.p50Ms, 2),
            p99_ms: round(o.p99Ms, 2),
            errors: o.errors,
            ingest_cpu_us_per_request: o.requests > 0 ? round((cpu / o.requests) * 1e6, 0) : null,
            sink_requests: sink.requests - sink0.requests,
            sink_bytes: sink.bytes - sink0.bytes,
          };
          say(`  ${sample.rps} req/s, p99 ${sample.p99_ms} ms, ${sample.ingest_cpu_us_per_request} µs CPU/request`);
          samples.push(sample);
        }
      }
      const mean = (name: string, key: string) => {
        const values = samples.filter((s) => s.config === name).map((s) => Number(s[key]));
        return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
      };
      const off = {
        rps: mean('off', 'rps'),
        p99: mean('off', 'p99_ms'),
        cpu: mean('off', 'ingest_cpu_us_per_request'),
      };
      const rows = configs.map((c) => {
        const rps = mean(c.name, 'rps');
        const p99 = mean(c.name, 'p99_ms');
        const cpu = mean(c.name, 'ingest_cpu_us_per_request');
        return {
          config: c.name,
          rps: round(rps, 1),
          rps_ratio: round(rps / off.rps, 3),
          p50_ms: round(mean(c.name, 'p50_ms'), 2),
          p99_ms: round(p99, 2),
          p99_ratio: round(p99 / off.p99, 3),
          ingest_cpu_us_per_request: round(cpu, 0),
          cpu_ratio: round(cpu / off.cpu, 3),
          sink_requests: mean(c.name, 'sink_requests'),
          sink_bytes: mean(c.name, 'sink_bytes'),
        };
      });
      process.stdout.write(
        `\n${formatTable(
          [
            'tracing',
            'rps',
            'rps_ratio',
            'p50_ms',
            'p99_ms',
            'p99_ratio',
            'us_cpu/req',
            'cpu_ratio',
            'sink_posts',
            'sink_bytes',
          ],
          rows.map((r) =>
            [
              r.config,
              r.rps,
              r.rps_ratio,
              r.p50_ms,
              r.p99_ms,
              r.p99_ratio,
              r.ingest_cpu_us_per_request,
              r.cpu_ratio,
              r.sink_requests,
              r.sink_bytes,
            ].map(String),
          ),
        )}\n\nwrk -t1 -c${settings.connections}, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per run, ` +
          `mean of ${settings.rounds} rounds; ratios to tracing off.\n`,
      );
      return { settings, rows, samples };
    },
  });
} finally {
  server.close();
}
