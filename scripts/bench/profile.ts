/**
 * `npm run bench:profile -- <case> [--dist DIR]`: one case of `npm run bench` (and what it needs before it),
 * run as the bench runs it but with the process that serves the case under `node --cpu-prof`; then the samples
 * of the measured window only, resolved through the bundle's source map (dist/<fn>.mjs.map, with
 * @jridgewell/trace-mapping), printed as busy time by module — our files by repository path, dependencies by npm
 * package (Node's own and native code count for the nearest of those that called it), plus the GC / program /
 * idle buckets — in % of busy time and in µs per request, and the top functions by self time. The raw profile is kept as bench-results/profile-<case>.cpuprofile
 * (Chrome DevTools opens it); `--dist` (or BENCH_DIST) profiles another build, e.g. an older commit's.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { helpFromHeader } from '../help.ts';
import { ROOT } from '../processes.ts';
import { type Bench, naive, type RunOptions, service, settings } from './cases.ts';
import { analyse, type CpuProfile } from './cpu-profile.ts';
import { ARGS, DIST, intEnv, runBench, say } from './lifecycle.ts';
import { createBenchTables } from './pg.ts';
import { formatTable } from './report.ts';

helpFromHeader(import.meta.url);

const SERVERS = {
  'node-hello': 'hello',
  'naive-post': 'naive',
  'naive-post-128': 'naive',
  'naive-get': 'naive',
  'naive-list': 'naive',
  'post-one': 'ingest',
  'post-one-128': 'ingest',
  'post-batch-100': 'ingest',
  'get-hot': 'query',
  'get-cold': 'query',
  'list-page': 'query',
} as const;
type CaseName = keyof typeof SERVERS;
const TOP = intEnv('BENCH_PROFILE_TOP', 25);
const TOP_MODULES = 30;

const requested = ARGS[0] as CaseName | undefined;
if (requested === undefined || !(requested in SERVERS) || ARGS.length > 1) {
  process.stderr.write(`usage: npm run bench:profile -- <${Object.keys(SERVERS).join('|')}> [--dist DIR]\n`);
  process.exit(2);
}
const server = SERVERS[requested];

await runBench({
  name: `profile-${requested}`,
  database: 'data_service_bench_profile',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 600),
  async body(ctx) {
    const dir = join(ctx.tmp, 'cpu-profile');
    let window: { from: number; to: number } | undefined;
    const options: RunOptions = {
      only: new Set([requested]),
      nodeArgs: (s) => (s === server ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=250'] : []),
      onWindow: (name, from, to) => {
        if (name === requested) window = { from, to };
      },
    };
    const b: Bench = { ctx, entries: [], options, phase: 0 };
    await createBenchTables(ctx.pg, ctx.database);
    await (server === 'ingest' || server === 'query' ? service(b) : naive(b));
    const entry = b.entries.find((e) => e.name === requested);
    const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (window === undefined || entry === undefined || file === undefined) throw new Error('no profile was written');
    mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
    copyFileSync(join(dir, file), join(ROOT, 'bench-results', `profile-${requested}.cpuprofile`));
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const { byModule, byFunction } = analyse(profile, window.from, window.to, DIST);
    const windowUs = [...byModule.values()].reduce((a, b) => a + b, 0);
    const idleUs = byModule.get('(idle)') ?? 0;
    const busyUs = windowUs - idleUs;
    const requests = entry.requests ?? 1;
    const share = (us: number) => `${((us / busyUs) * 100).toFixed(1)}%`;
    const perRequest = (us: number) => (us / requests).toFixed(1);
    const modules = [...byModule].filter(([m]) => m !== '(idle)' && m !== '(root)').sort((a, b) => b[1] - a[1]);
    const functions = [...byFunction].filter(([, f]) => f.module !== '(idle)').sort((a, b) => b[1].us - a[1].us);
    process.stdout.write(
      [
        '',
        `${requested} on ${server === 'ingest' || server === 'query' ? join(DIST, `${server}.mjs`) : `scripts/bench/${server}-server.ts`}: ` +
          `${entry.rps?.toFixed(0)} req/s, ${entry.requests} requests, server CPU ${entry.cpu_us_per_request?.server} µs/request ` +
          `(${settings.connections} connections unless the case says otherwise)`,
        `window ${(windowUs / 1e6).toFixed(2)} s of samples: busy ${(busyUs / 1e6).toFixed(2)} s (${perRequest(busyUs)} µs/request on the main thread), idle ${((idleUs / windowUs) * 100).toFixed(0)}%`,
        '',
        'Busy time by module (self time):',
        formatTable(
          ['module', 'busy', 'µs/req'],
          [
            ...modules.slice(0, TOP_MODULES).map(([m, us]) => [m, share(us), perRequest(us)]),
            ...(modules.length > TOP_MODULES
              ? [modules.slice(TOP_MODULES).reduce((sum, [, us]) => sum + us, 0)].map((us) => [
                  `(${modules.length - TOP_MODULES} more modules)`,
                  share(us),
                  perRequest(us),
                ])
              : []),
          ],
        ),
        '',
        `Top ${TOP} functions by self time:`,
        formatTable(
          ['busy', 'µs/req', 'function  where'],
          functions.slice(0, TOP).map(([key, f]) => [share(f.us), perRequest(f.us), key]),
        ),
        '',
        `Raw profile: bench-results/profile-${requested}.cpuprofile`,
        '',
      ].join('\n'),
    );
    say(`profile of ${requested}: ${modules.length} modules, ${functions.length} functions`);
    return {
      case: requested,
      window_us: window,
      entry,
      busy_us: busyUs,
      idle_us: idleUs,
      modules: Object.fromEntries(modules.map(([m, us]) => [m, { us, us_per_request: us / requests }])),
      top_functions: functions.slice(0, 100).map(([key, f]) => ({ function: key, module: f.module, us: f.us })),
    };
  },
});
