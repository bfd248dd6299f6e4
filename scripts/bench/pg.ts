/**
 * PostgreSQL for the benches: scratch databases (a name without "bench" or "growth" is refused, so the test
 * database is never touched), the plain tables of the ceilings and the naive reference, and pgbench runs whose
 * per-transaction logs give p50/p99.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile, run, runOk } from '../processes.ts';
import { postgresBin } from '../services/postgres.ts';
import { trackCpu } from './cost.ts';

export interface PgTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
}

/** Refuses any database name that does not say it is scratch ("bench" or "growth"). */
export function assertScratchDatabase(name: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(name) || !/bench|growth/.test(name)) {
    throw new Error(`refusing to use database "${name}": the name must contain "bench" or "growth"`);
  }
}

export const databaseUrl = (pg: PgTarget, name: string): string => {
  assertScratchDatabase(name);
  return `postgres://${pg.user}@${pg.host}:${pg.port}/${name}`;
};

const connection = (pg: PgTarget) => ['-h', pg.host, '-p', String(pg.port), '-U', pg.user];

export const psql = (pg: PgTarget, database: string, sql: string): Promise<string> =>
  runOk(join(postgresBin(), 'psql'), [...connection(pg), '-d', database, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], {
    timeoutMs: 120_000,
  });

/** Drops (forcing out any session) and, unless `dropOnly`, creates the scratch database `name`. */
export async function recreateDatabase(pg: PgTarget, name: string, dropOnly = false): Promise<void> {
  assertScratchDatabase(name);
  await psql(pg, 'postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  if (!dropOnly) await psql(pg, 'postgres', `CREATE DATABASE ${name}`);
}

export const SELECT_ROWS = 100_000;

/**
 * Plain tables shaped like a record: the pgbench inserts', the PK select's, and the naive server's, whose list
 * index matches its ORDER BY exactly as the service's does.
 */
export async function createBenchTables(pg: PgTarget, database: string): Promise<void> {
  const columns = `source text NOT NULL, type text NOT NULL, "timestamp" timestamptz NOT NULL,
    payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now()`;
  await psql(
    pg,
    database,
    `CREATE TABLE bench_pg_insert (id uuid PRIMARY KEY, ${columns});
     CREATE TABLE bench_naive (id uuid PRIMARY KEY, ${columns});
     CREATE INDEX bench_naive_list ON bench_naive (source, "timestamp" DESC, id DESC);
     CREATE TABLE bench_pg_select (k bigint PRIMARY KEY, id uuid NOT NULL, ${columns});
     INSERT INTO bench_pg_select (k, id, source, type, "timestamp", payload)
       SELECT g, gen_random_uuid(), 'bench-select', 'reading', now(), jsonb_build_object('seq', g, 'unit', 'C', 'value', 21.5)
       FROM generate_series(1, ${SELECT_ROWS}) g;`,
  );
  await psql(pg, database, 'VACUUM ANALYZE bench_pg_select');
}

const row = (seq: number) =>
  `(gen_random_uuid(), 'bench-batch', 'reading', now(), '{"seq": ${seq}, "unit": "C", "value": 21.5}')`;
const insert = 'INSERT INTO bench_pg_insert (id, source, type, "timestamp", payload) VALUES';

/** pgbench custom scripts; the 100-row insert sends its rows as literals, as a client with 100 records would. */
export const pgbenchScripts = {
  insert1: `${insert} ${row(1)};\n`,
  insert100: `${insert}\n${Array.from({ length: 100 }, (_, i) => row(i)).join(',\n')};\n`,
  selectPk: `\\set k random(1, ${SELECT_ROWS})\nSELECT id, source, type, "timestamp", payload, received_at FROM bench_pg_select WHERE k = :k;\n`,
};

export interface PgbenchOutcome {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** CPU seconds pgbench itself used. */
  readonly cpuSeconds: number;
}

/** One pgbench run, one thread (-j 1), no vacuum (-n); `log` writes the per-transaction log for percentiles. */
export async function pgbench(
  pg: PgTarget,
  database: string,
  o: { name: string; script: string; clients: number; seconds: number; prepared: boolean; dir: string; log: boolean },
): Promise<PgbenchOutcome> {
  const script = join(o.dir, `${o.name}.sql`);
  writeFileSync(script, o.script);
  const prefix = `pgbench-${o.name}`;
  const cpu = trackCpu();
  const result = await run(
    join(postgresBin(), 'pgbench'),
    [
      ...connection(pg),
      ...['-n', '-j', '1', '-c', String(o.clients), '-T', String(o.seconds), '-f', script],
      ...['-M', o.prepared ? 'prepared' : 'simple', ...(o.log ? ['-l', `--log-prefix=${join(o.dir, prefix)}`] : [])],
      // The database is pgbench's positional argument: its -d is --debug, which prints every statement sent.
      database,
    ],
    { timeoutMs: (o.seconds + 60) * 1000, cwd: o.dir, onSpawn: cpu.onSpawn },
  );
  if (result.exitCode !== 0) throw new Error(`pgbench ${o.name} failed:\n${result.stdout}${result.stderr}`);
  const number = (re: RegExp) => Number(re.exec(result.stdout)?.[1] ?? 0);
  const rps = number(/tps = ([\d.]+) \(without initial connection time\)/);
  const requests = number(/number of transactions actually processed: (\d+)/);
  const latencies: number[] = [];
  for (const file of readdirSync(o.dir).filter((f) => f.startsWith(`${prefix}.`))) {
    // client_id transaction_no time script_no time_epoch time_us: `time` is the latency in µs.
    for (const line of readFileSync(join(o.dir, file), 'utf8').split('\n')) {
      const micros = Number(line.split(' ')[2]);
      if (line !== '' && Number.isFinite(micros)) latencies.push(micros / 1000);
    }
    rmSync(join(o.dir, file), { force: true });
  }
  return {
    requests,
    seconds: rps > 0 ? requests / rps : o.seconds,
    rps,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors: number(/number of failed transactions: (\d+)/),
    cpuSeconds: cpu.seconds(),
  };
}
