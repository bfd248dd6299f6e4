/**
 * `npm run bench:export`: `GET /data/export` of one large source through the query bundle (issue 13): rows/s and
 * the query process's peak resident set (VmHWM) beside the query pod's memory limit (knative/base/query.yaml).
 * Loads BENCH_EXPORT_ROWS (1000000) records with BENCH_EXPORT_FILL_BYTES (64) bytes of payload text into one
 * source (INSERT … SELECT, scripts/bench/synthetic-records.ts), starts the query bundle the deployed way, and
 * exports the source once as it is sent (Accept-Encoding: identity) and once gzip-compressed, each read to the end
 * by a node:http client that counts the lines (every record must arrive once) and the bytes on the wire.
 *
 *   npm run bench:export
 *   BENCH_EXPORT_ROWS=100000 npm run bench:export
 */
import { request } from 'node:http';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { helpFromHeader } from '../help.ts';
import { progress } from '../progress.ts';
import { measure } from './cost.ts';
import { intEnv, runBench, say } from './lifecycle.ts';
import { sampleMemory } from './memory.ts';
import { round } from './report.ts';
import { loadSourceRecords } from './synthetic-records.ts';

helpFromHeader(import.meta.url);

const settings = {
  rows: intEnv('BENCH_EXPORT_ROWS', 1_000_000),
  fillBytes: intEnv('BENCH_EXPORT_FILL_BYTES', 64),
};
const SOURCE = 'bench-export';

interface Exported {
  readonly lines: number;
  readonly wireBytes: number;
  readonly bodyBytes: number;
  readonly firstByteMs: number;
  readonly complete: boolean;
}

/** One export read to the end; lines are counted on the decoded body. */
function exportOnce(url: string, headers: Readonly<Record<string, string>>, encoding: 'identity' | 'gzip') {
  return new Promise<Exported>((resolve, reject) => {
    const began = performance.now();
    const req = request(url, { headers: { ...headers, 'accept-encoding': encoding } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`${url}: ${res.statusCode}`));
        res.resume();
        return;
      }
      const firstByteMs = performance.now() - began;
      let wireBytes = 0;
      let bodyBytes = 0;
      let lines = 0;
      res.on('data', (chunk: Buffer) => {
        wireBytes += chunk.length;
      });
      const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
      body.on('data', (chunk: Buffer) => {
        bodyBytes += chunk.length;
        for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) lines++;
      });
      body.on('error', reject);
      body.on('end', () => resolve({ lines, wireBytes, bodyBytes, firstByteMs, complete: res.complete }));
    });
    req.on('error', reject);
    req.end();
  });
}

await runBench({
  name: 'export',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 1_200),
  async body(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl, application_name: 'bench-export' });
    await client.connect();
    try {
      const load = progress(`loading ${settings.rows} records`, settings.rows, { unit: 'rows' });
      await loadSourceRecords(client, {
        source: SOURCE,
        count: settings.rows,
        fillBytes: settings.fillBytes,
        endMs: Date.now() - 60_000,
        spacingMs: Math.max(0.001, (3 * 86_400_000) / settings.rows),
        progress: (n) => load.update(n),
      });
      load.finish();
    } finally {
      await client.end();
    }
    const query = await ctx.startBundle('query', ctx.functionEnv());
    const url = `${query.url}/data/export?source=${SOURCE}`;
    const runs: Array<Record<string, unknown>> = [];
    for (const encoding of ['identity', 'gzip'] as const) {
      say(`exporting ${settings.rows} rows (${encoding})`);
      const memory = sampleMemory(query.process.pid);
      const cost = await measure([query.process.pid], () => exportOnce(url, ctx.requestHeaders, encoding));
      const report = memory.stop();
      const { lines, wireBytes, bodyBytes, firstByteMs, complete } = cost.result;
      if (!complete || lines !== settings.rows) throw new Error(`${encoding}: ${lines} lines, complete ${complete}`);
      const run = {
        encoding,
        rows: lines,
        seconds: round(cost.wallSeconds, 2),
        rows_per_second: Math.round(lines / cost.wallSeconds),
        body_mib: round(bodyBytes / 2 ** 20, 1),
        wire_mib: round(wireBytes / 2 ** 20, 1),
        first_byte_ms: round(firstByteMs, 1),
        query_cpu_seconds: round(cost.cpuSeconds.server, 2),
        postgres_cpu_seconds: round(cost.cpuSeconds.postgres, 2),
        ...report,
      };
      runs.push(run);
      process.stdout.write(
        `\n${encoding}: ${lines} rows in ${run.seconds} s = ${run.rows_per_second} rows/s (${run.body_mib} MiB of NDJSON, ${run.wire_mib} MiB on the wire, first byte after ${run.first_byte_ms} ms); CPU s: query ${run.query_cpu_seconds}, PostgreSQL ${run.postgres_cpu_seconds}\n` +
          `query process: peak RSS (VmHWM, since start) ${report.peak_rss_mib} MiB, highest sampled during this export ${report.sampled_peak_rss_mib} MiB, before it ${report.idle_rss_mib} MiB; pod limit ${report.pod_limit_mib} MiB (${report.under_pod_limit ? 'under' : 'OVER'})\n`,
      );
    }
    process.stdout.write('\n');
    return { settings, runs };
  },
});
