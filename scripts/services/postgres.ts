/**
 * PostgreSQL from Debian's package (installed with apt-get when missing), run as the `postgres` user when we are
 * root, with its own data directory and port (SERVICES_PG_PORT, 25432).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { aptInstall, isRoot, ROOT } from '../processes.ts';
import { envPort, livePid, log, runSync as run, SERVICES_DIR, type Service, type Settings } from './service.ts';

export const PG_PORT = envPort('SERVICES_PG_PORT', 25432);
const PG_DATABASES = ['data_service_test', 'data_service'];

export function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const find = () =>
    existsSync(base)
      ? readdirSync(base)
          .filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl')))
          .sort((a, b) => Number(b) - Number(a))
      : [];
  let versions = find();
  if (versions.length === 0) {
    aptInstall(['postgresql'], 'PostgreSQL');
    versions = find();
  }
  const version = versions[0];
  if (version === undefined) throw new Error('PostgreSQL installation did not provide pg_ctl');
  return join(base, version, 'bin');
}

/** A data directory the server's user can reach: in the repo when possible, else under /var/tmp. */
export function postgresDataDir(name = 'postgres'): string {
  const inRepo = join(SERVICES_DIR, name);
  if (!isRoot) return inRepo;
  mkdirSync(SERVICES_DIR, { recursive: true });
  const reachable = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', SERVICES_DIR]).status === 0;
  if (reachable) return inRepo;
  const id = createHash('sha256').update(ROOT).digest('hex').slice(0, 12);
  return `/var/tmp/data-service-${id}/${name}`;
}

function postgresUp(): Settings {
  const bin = postgresBin();
  const dataDir = postgresDataDir();
  const pgCtl = join(bin, 'pg_ctl');
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    log(`initialising PostgreSQL in ${dataDir}`);
    mkdirSync(dataDir, { recursive: true });
    if (isRoot) {
      execFileSync('chown', ['-R', 'postgres:postgres', dirname(dataDir)]);
      chmodSync(dirname(dataDir), 0o755);
    }
    run(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8'], {
      asPostgres: true,
    });
    writeFileSync(
      join(dataDir, 'postgresql.auto.conf'),
      [
        `port = ${PG_PORT}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${dataDir}'`,
        'max_connections = 200',
        'shared_buffers = 256MB',
        "timezone = 'UTC'",
        '',
      ].join('\n'),
    );
    if (isRoot) execFileSync('chown', ['postgres:postgres', join(dataDir, 'postgresql.auto.conf')]);
  }
  if (postgresRunning()) {
    log(`PostgreSQL already running on 127.0.0.1:${PG_PORT}`);
  } else {
    log(`starting PostgreSQL on 127.0.0.1:${PG_PORT}`);
    run(pgCtl, ['start', '-w', '-t', '60', '-D', dataDir, '-l', join(dataDir, 'server.log')], { asPostgres: true });
  }
  const psql = join(bin, 'psql');
  const connection = ['-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'postgres'];
  for (const db of PG_DATABASES) {
    const exists = run(psql, [...connection, '-tAc', `SELECT 1 FROM pg_database WHERE datname = '${db}'`]);
    if (exists.trim() !== '1') run(psql, [...connection, '-c', `CREATE DATABASE ${db}`]);
  }
  // A real round trip, not just a pid file: the tests start right after this.
  run(psql, [...connection, '-d', 'data_service_test', '-tAc', 'SELECT 1']);
  return {
    // A shell that evals `services:up` and runs `npm start` works on the development database; the test runner
    // points the suites at TEST_DATABASE_URL.
    DATABASE_URL: `postgres://postgres@127.0.0.1:${PG_PORT}/data_service`,
    TEST_DATABASE_URL: `postgres://postgres@127.0.0.1:${PG_PORT}/data_service_test`,
  };
}

function postgresRunning(): boolean {
  if (!existsSync('/usr/lib/postgresql')) return false;
  const dataDir = postgresDataDir();
  if (!existsSync(join(dataDir, 'PG_VERSION'))) return false;
  const pgCtl = join(postgresBin(), 'pg_ctl');
  return run(pgCtl, ['status', '-D', dataDir], { asPostgres: true, allowFail: true }).includes('server is running');
}

function postgresDown(): void {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return;
  const bin = postgresBin();
  const dataDir = postgresDataDir();
  if (!existsSync(join(dataDir, 'PG_VERSION'))) return;
  const out = run(join(bin, 'pg_ctl'), ['stop', '-m', 'fast', '-w', '-D', dataDir], {
    asPostgres: true,
    allowFail: true,
  });
  log(out.includes('server stopped') ? 'PostgreSQL stopped' : 'PostgreSQL was not running');
}

export const postgres: Service = {
  name: 'postgres',
  up: async () => postgresUp(),
  down: async () => postgresDown(),
  running: async () => postgresRunning(),
  // The postmaster: every backend is its child.
  pids: () => [livePid(join(postgresDataDir(), 'postmaster.pid'), 'postgres')].filter((pid) => pid !== undefined),
};
