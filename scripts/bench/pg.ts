/**
 * PostgreSQL for the bench: the bench database (dropped and created afresh every run, never the test database),
 * its plain tables for the ceilings and the naive reference, and pgbench runs with per-transaction logs from which
 * p50/p99 are computed.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk, runTimed } from './proc.ts';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
export const BENCH_DB = 'data_service_bench';

export interface PgTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
}

export const benchUrl = (pg: PgTarget): string => `postgres://${pg.user}@${pg.host}:${pg.port}/${BENCH_DB}`;

const connection = (pg: PgTarget) => ['-h', pg.host, '-p', String(pg.port), '-U', pg.user];

export function psql(pg: PgTarget, database: string, sql: string, timeoutMs = 120_000): Promise<string> {
  return runOk(join(PG_BIN, 'psql'), [...connection(pg), '-d', database, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], {
    timeoutMs,
  });
}

/** Drops (forcing out any session) and creates the bench database. Refuses any other name. */
export async function recreateBenchDatabase(pg: PgTarget): Promise<void> {
  await psql(pg, 'postgres', `DROP DATABASE IF EXISTS ${BENCH_DB} WITH (FORCE)`);
  await psql(pg, 'postgres', `CREATE DATABASE ${BENCH_DB}`);
}

export async function dropBenchDatabase(pg: PgTarget): Promise<void> {
  await psql(pg, 'postgres', `DROP DATABASE IF EXISTS ${BENCH_DB} WITH (FORCE)`);
}

export const SELECT_ROWS = 100_000;

/** Plain tables shaped like a record: one for the pgbench inserts, one for the PK select, one for the naive server. */
export async function createBenchTables(pg: PgTarget): Promise<void> {
  const columns = `source text NOT NULL, type text NOT NULL, "timestamp" timestamptz NOT NULL,
    payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now()`;
  await psql(
    pg,
    BENCH_DB,
    `CREATE TABLE bench_pg_insert (id uuid PRIMARY KEY, ${columns});
     CREATE TABLE bench_naive (id uuid PRIMARY KEY, ${columns});
     CREATE TABLE bench_pg_select (k bigint PRIMARY KEY, id uuid NOT NULL, ${columns});
     INSERT INTO bench_pg_select (k, id, source, type, "timestamp", payload)
       SELECT g, gen_random_uuid(), 'bench-select', 'reading', now(),
              jsonb_build_object('seq', g, 'unit', 'C', 'value', 21.5)
       FROM generate_series(1, ${SELECT_ROWS}) g;`,
  );
  await psql(pg, BENCH_DB, 'VACUUM ANALYZE bench_pg_select');
}

const row = (seq: number) =>
  `(gen_random_uuid(), 'bench-batch', 'reading', now(), '{"seq": ${seq}, "unit": "C", "value": 21.5}')`;

/** pgbench custom scripts; the 100-row insert sends its rows as literals, as a client with 100 records would. */
export const pgbenchScripts = {
  insert1: `INSERT INTO bench_pg_insert (id, source, type, "timestamp", payload) VALUES ${row(1)};\n`,
  insert100: `INSERT INTO bench_pg_insert (id, source, type, "timestamp", payload) VALUES\n${Array.from(
    { length: 100 },
    (_, i) => row(i),
  ).join(',\n')};\n`,
  selectPk: `\\set k random(1, ${SELECT_ROWS})\nSELECT id, source, type, "timestamp", payload, received_at FROM bench_pg_select WHERE k = :k;\n`,
};

export interface PgbenchOutcome {
  readonly transactions: number;
  readonly seconds: number;
  readonly tps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly failed: number;
  /** CPU seconds pgbench itself used. */
  readonly cpuSeconds: number;
}

export interface PgbenchOptions {
  readonly name: string;
  readonly script: string;
  readonly clients: number;
  readonly seconds: number;
  readonly prepared: boolean;
  readonly dir: string;
  /** Write the per-transaction log and compute percentiles from it. */
  readonly log: boolean;
}

/** One pgbench run, one thread (-j 1), no vacuum (-n). */
export async function pgbench(pg: PgTarget, options: PgbenchOptions): Promise<PgbenchOutcome> {
  const scriptPath = join(options.dir, `${options.name}.sql`);
  writeFileSync(scriptPath, options.script);
  const prefix = join(options.dir, `pgbench-${options.name}`);
  const args = [
    ...connection(pg),
    '-d',
    BENCH_DB,
    '-n',
    '-j',
    '1',
    '-c',
    String(options.clients),
    '-T',
    String(options.seconds),
    '-f',
    scriptPath,
    '-M',
    options.prepared ? 'prepared' : 'simple',
    ...(options.log ? ['-l', `--log-prefix=${prefix}`] : []),
  ];
  const result = await runTimed(join(PG_BIN, 'pgbench'), args, {
    timeoutMs: (options.seconds + 60) * 1000,
    cwd: options.dir,
  });
  if (result.code !== 0)
    throw new Error(`pgbench ${options.name} failed (${result.code}):\n${result.stdout}${result.stderr}`);
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(result.stdout)?.[1] ?? 0);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(result.stdout)?.[1] ?? 0);
  const failed = Number(/number of failed transactions: (\d+)/.exec(result.stdout)?.[1] ?? 0);
  let p50Ms = Number.NaN;
  let p99Ms = Number.NaN;
  if (options.log) {
    const latencies: number[] = [];
    const base = `pgbench-${options.name}.`;
    for (const file of readdirSync(options.dir).filter((f) => f.startsWith(base))) {
      const path = join(options.dir, file);
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        // client_id transaction_no time script_no time_epoch time_us — `time` is the latency in µs.
        const micros = Number(line.split(' ')[2]);
        if (Number.isFinite(micros) && line.length > 0) latencies.push(micros);
      }
      rmSync(path, { force: true });
    }
    latencies.sort((a, b) => a - b);
    p50Ms = percentile(latencies, 50) / 1000;
    p99Ms = percentile(latencies, 99) / 1000;
  }
  return {
    transactions,
    seconds: tps > 0 ? transactions / tps : options.seconds,
    tps,
    p50Ms,
    p99Ms,
    failed,
    cpuSeconds: result.cpuSeconds,
  };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** Scratch databases of the other bench scripts: the name must say so ("bench" or "growth"), or nothing is done. */
export function assertScratchDatabase(name: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(name) || !/bench|growth/.test(name)) {
    throw new Error(`refusing to use database "${name}": the name must contain "bench" or "growth"`);
  }
}

export const databaseUrl = (pg: PgTarget, name: string): string => {
  assertScratchDatabase(name);
  return `postgres://${pg.user}@${pg.host}:${pg.port}/${name}`;
};

/** Drops (forcing out any session) and creates a scratch database named `name` (see assertScratchDatabase). */
export async function recreateDatabase(pg: PgTarget, name: string): Promise<void> {
  assertScratchDatabase(name);
  await psql(pg, 'postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await psql(pg, 'postgres', `CREATE DATABASE ${name}`);
}

export async function dropDatabase(pg: PgTarget, name: string): Promise<void> {
  assertScratchDatabase(name);
  await psql(pg, 'postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
