/**
 * A streaming standby of the services' PostgreSQL (`npm run services:up -- replica`, started only when named):
 * `pg_basebackup -R` from the primary into its own data directory (standby.signal and primary_conninfo written by
 * it), on SERVICES_PG_REPLICA_PORT (25433). What DATABASE_READ_URL points at in the tests of read-your-writes:
 * `SELECT pg_wal_replay_pause()` on it makes it lag on purpose.
 */

import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot } from '../processes.ts';
import { PG_PORT, postgres, postgresBin, postgresDataDir } from './postgres.ts';
import { envPort, livePid, log, runSync as run, type Service, type Settings } from './service.ts';

const REPLICA_PORT = envPort('SERVICES_PG_REPLICA_PORT', 25433);
const dataDir = () => postgresDataDir('postgres-replica');

function replicaRunning(): boolean {
  if (!existsSync(join(dataDir(), 'PG_VERSION'))) return false;
  const pgCtl = join(postgresBin(), 'pg_ctl');
  return run(pgCtl, ['status', '-D', dataDir()], { asPostgres: true, allowFail: true }).includes('server is running');
}

async function replicaUp(): Promise<Settings> {
  const primary = await postgres.up();
  const bin = postgresBin();
  const dir = dataDir();
  if (!existsSync(join(dir, 'standby.signal'))) {
    log(`copying the primary (127.0.0.1:${PG_PORT}) into a standby in ${dir} (pg_basebackup)`);
    rmSync(dir, { recursive: true, force: true });
    run(
      join(bin, 'pg_basebackup'),
      ['-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'postgres', '-D', dir, '-R', '-X', 'stream', '-c', 'fast'],
      { asPostgres: true },
    );
    // The copy carries the primary's postgresql.auto.conf; later lines win, so the standby takes its own port.
    appendFileSync(join(dir, 'postgresql.auto.conf'), `port = ${REPLICA_PORT}\nunix_socket_directories = '${dir}'\n`);
    if (isRoot) execFileSync('chown', ['postgres:postgres', join(dir, 'postgresql.auto.conf')]);
  }
  if (replicaRunning()) {
    log(`PostgreSQL standby already running on 127.0.0.1:${REPLICA_PORT}`);
  } else {
    log(`starting the PostgreSQL standby on 127.0.0.1:${REPLICA_PORT}`);
    run(join(bin, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', dir, '-l', join(dir, 'server.log')], {
      asPostgres: true,
    });
  }
  const recovering = run(join(bin, 'psql'), [
    ...['-h', '127.0.0.1', '-p', String(REPLICA_PORT), '-U', 'postgres', '-d', 'data_service_test'],
    '-tAc',
    'SELECT pg_is_in_recovery()',
  ]).trim();
  if (recovering !== 't')
    throw new Error(`127.0.0.1:${REPLICA_PORT} is not a standby (pg_is_in_recovery = ${recovering})`);
  const swap = (url: string | undefined) => url?.replace(`:${PG_PORT}/`, `:${REPLICA_PORT}/`) ?? '';
  return { DATABASE_READ_URL: swap(primary.DATABASE_URL), TEST_DATABASE_READ_URL: swap(primary.TEST_DATABASE_URL) };
}

function replicaDown(): void {
  if (!existsSync(join(dataDir(), 'PG_VERSION'))) return;
  const out = run(join(postgresBin(), 'pg_ctl'), ['stop', '-m', 'fast', '-w', '-D', dataDir()], {
    asPostgres: true,
    allowFail: true,
  });
  log(out.includes('server stopped') ? 'PostgreSQL standby stopped' : 'PostgreSQL standby was not running');
}

export const postgresReplica: Service = {
  name: 'replica',
  up: replicaUp,
  down: async () => replicaDown(),
  running: async () => replicaRunning(),
  pids: () => [livePid(join(dataDir(), 'postmaster.pid'), 'postgres')].filter((pid) => pid !== undefined),
};
