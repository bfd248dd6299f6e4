/**
 * `npm run bench:list-bytes`: the query bundle's peak memory while lists of large records are walked (issue 12).
 * Loads BENCH_LIST_RECORDS (5000) records with a payload of BENCH_LIST_FILL_BYTES (61440) bytes of text into one
 * source (INSERT … SELECT, scripts/bench/synthetic-records.ts), starts the query bundle the deployed way (Redis
 * on), and runs BENCH_LIST_WALKERS (5) parallel walks of `GET /data?source=…&limit=1000` by next_cursor to the
 * end, each walk checked to yield every record once, in order. It prints the query process's peak resident set
 * (VmHWM) beside the query pod's memory limit (knative/base/query.yaml), pages and records per walk and the time.
 *
 * The client is Node's fetch, which asks for gzip/br: pages go out compressed, as to most clients.
 * BENCH_LIST_MAX_BYTES sets LIST_MAX_BYTES for the query process (default: the deployed 4 MiB; 268435456 stands
 * for "no bound"). `--dist DIR` measures another build, e.g. the commit before the bound:
 *
 *   npm run bench:list-bytes
 *   npm run bench:list-bytes -- --dist /tmp/base/dist
 */
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
  records: intEnv('BENCH_LIST_RECORDS', 5_000),
  fillBytes: intEnv('BENCH_LIST_FILL_BYTES', 61_440),
  walkers: intEnv('BENCH_LIST_WALKERS', 5),
  limit: 1_000,
  listMaxBytes: process.env.BENCH_LIST_MAX_BYTES,
};
const SOURCE = 'bench-list-bytes';

await runBench({
  name: 'list-bytes',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 900),
  async body(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl, application_name: 'bench-list-bytes' });
    await client.connect();
    try {
      const load = progress(`loading ${settings.records} records of ${settings.fillBytes} B`, settings.records, {
        unit: 'rows',
      });
      await loadSourceRecords(client, {
        source: SOURCE,
        count: settings.records,
        fillBytes: settings.fillBytes,
        endMs: Date.now() - 60_000,
        spacingMs: 100,
        progress: (n) => load.update(n),
      });
      load.finish();
    } finally {
      await client.end();
    }
    const query = await ctx.startBundle(
      'query',
      ctx.functionEnv(settings.listMaxBytes === undefined ? {} : { LIST_MAX_BYTES: settings.listMaxBytes }),
    );
    say(
      `${settings.walkers} parallel walks of limit=${settings.limit} (LIST_MAX_BYTES ${settings.listMaxBytes ?? 'deployed'})`,
    );
    const memory = sampleMemory(query.process.pid);
    let failure: string | undefined;
    const cost = await measure([query.process.pid], () =>
      Promise.all(
        Array.from({ length: settings.walkers }, async () => {
          const ids: string[] = [];
          let pages = 0;
          let bytes = 0;
          let cursor: string | null = null;
          try {
            do {
              const url = `${query.url}/data?source=${SOURCE}&limit=${settings.limit}${cursor ? `&cursor=${cursor}` : ''}`;
              const answer = await fetch(url, { headers: ctx.requestHeaders });
              const text = await answer.text();
              if (answer.status !== 200) throw new Error(`${url}: ${answer.status} ${text.slice(0, 300)}`);
              const page = JSON.parse(text) as { records: Array<{ id: string }>; next_cursor: string | null };
              pages++;
              bytes += Buffer.byteLength(text);
              ids.push(...page.records.map((r) => r.id));
              cursor = page.next_cursor;
            } while (cursor !== null);
          } catch (error) {
            // Reported with the memory figures (a process that died of memory is the finding, not a bench failure).
            failure ??= `${String(error)}\n${query.process.tail()}`;
          }
          return { ids, pages, bytes };
        }),
      ),
    );
    const walks = cost.result;
    const seconds = cost.wallSeconds;
    const cpu = {
      query_cpu_seconds: round(cost.cpuSeconds.server, 2),
      postgres_cpu_seconds: round(cost.cpuSeconds.postgres, 2),
      redis_cpu_seconds: round(cost.cpuSeconds.redis, 2),
    };
    const report = memory.stop();
    if (failure !== undefined) {
      process.stdout.write(`\nwalks failed: ${failure}\nquery process memory: ${JSON.stringify(report)}\n`);
      return { settings, ...report, ...cpu, failure };
    }
    const first = walks[0]?.ids ?? [];
    const complete = new Set(first).size === settings.records && first.length === settings.records;
    const identical = walks.every((w) => w.ids.length === first.length && w.ids.every((id, i) => id === first[i]));
    if (!complete || !identical) throw new Error('a walk did not yield every record exactly once, in the same order');
    const pages = walks[0]?.pages ?? 0;
    const result = {
      settings,
      ...report,
      ...cpu,
      pages_per_walk: pages,
      records_per_page: round(settings.records / pages, 1),
      decoded_mib_per_walk: round((walks[0]?.bytes ?? 0) / 2 ** 20, 1),
      seconds: round(seconds, 2),
    };
    process.stdout.write(
      `\nquery process: peak RSS (VmHWM) ${report.peak_rss_mib} MiB, highest sampled ${report.sampled_peak_rss_mib} MiB, idle ${report.idle_rss_mib} MiB; pod limit ${report.pod_limit_mib} MiB (${report.under_pod_limit ? 'under' : 'OVER'})\n` +
        `${settings.walkers} walks × ${settings.records} records of ${settings.fillBytes} B: ${pages} pages each (${result.records_per_page} records a page), ${result.decoded_mib_per_walk} MiB of JSON each, ${result.seconds} s; CPU s: query ${cpu.query_cpu_seconds}, PostgreSQL ${cpu.postgres_cpu_seconds}, Redis ${cpu.redis_cpu_seconds}\n\n`,
    );
    return result;
  },
});
