/**
 * `npm run services:up` / `services:down` / `services:status`: the backing services the tests and benchmarks
 * use, started from this machine's own packages on loopback ports of their own. PostgreSQL comes from Debian's
 * package (installed with apt-get when missing) and runs as the `postgres` user when we are root.
 * Idempotent: `up` leaves running services alone; `down` stops only what `up` started here.
 *
 * Prints the settings as `export NAME=value` lines on stdout (logs go to stderr), so `eval "$(npm run -s services:up)"`
 * configures a shell.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PG_PORT = Number(process.env.SERVICES_PG_PORT ?? 54329);
const PG_DATABASES = ['data_service_test', 'data_service'];
const isRoot = process.getuid?.() === 0;

const log = (message: string) => process.stderr.write(`[services] ${message}\n`);

function run(cmd: string, args: string[], options: { asPostgres?: boolean; allowFail?: boolean } = {}): string {
  const [file, argv] = options.asPostgres && isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const result = spawnSync(file, argv, { encoding: 'utf8', cwd: '/' });
  if (result.status !== 0 && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  }
  return `${result.stdout ?? ''}${result.stderr ?? ''}`;
}

function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const find = () =>
    existsSync(base)
      ? readdirSync(base)
          .filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl')))
          .sort((a, b) => Number(b) - Number(a))
      : [];
  let versions = find();
  if (versions.length === 0) {
    if (!isRoot) throw new Error('PostgreSQL is not installed; run: sudo apt-get install -y postgresql');
    log('installing PostgreSQL from Debian packages…');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'postgresql'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    versions = find();
  }
  const version = versions[0];
  if (version === undefined) throw new Error('PostgreSQL installation did not provide pg_ctl');
  return join(base, version, 'bin');
}

/** A data directory the server's user can reach: in the repo when possible, else under /var/tmp. */
function postgresDataDir(): string {
  const inRepo = join(ROOT, '.services', 'postgres');
  if (!isRoot) return inRepo;
  mkdirSync(join(ROOT, '.services'), { recursive: true });
  const reachable = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', join(ROOT, '.services')]).status === 0;
  if (reachable) return inRepo;
  const id = createHash('sha256').update(ROOT).digest('hex').slice(0, 12);
  return `/var/tmp/data-service-${id}/postgres`;
}

function postgresUp(): Record<string, string> {
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
  for (const db of PG_DATABASES) {
    const exists = run(psql, [
      '-h',
      '127.0.0.1',
      '-p',
      String(PG_PORT),
      '-U',
      'postgres',
      '-tAc',
      `SELECT 1 FROM pg_database WHERE datname = '${db}'`,
    ]);
    if (exists.trim() !== '1')
      run(psql, ['-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'postgres', '-c', `CREATE DATABASE ${db}`]);
  }
  // A real round trip, not just a pid file: the tests start right after this.
  run(psql, [
    '-h',
    '127.0.0.1',
    '-p',
    String(PG_PORT),
    '-U',
    'postgres',
    '-d',
    'data_service_test',
    '-tAc',
    'SELECT 1',
  ]);
  return {
    DATABASE_URL: `postgres://postgres@127.0.0.1:${PG_PORT}/data_service_test`,
    DATABASE_URL_DEV: `postgres://postgres@127.0.0.1:${PG_PORT}/data_service`,
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

const command = process.argv[2] ?? 'up';
try {
  if (command === 'up') {
    const settings = postgresUp();
    for (const [name, value] of Object.entries(settings)) process.stdout.write(`export ${name}=${value}\n`);
  } else if (command === 'down') {
    postgresDown();
  } else if (command === 'status') {
    process.exit(postgresRunning() ? 0 : 1);
  } else {
    throw new Error(`unknown command ${command}; use up or down`);
  }
} catch (error) {
  log(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
