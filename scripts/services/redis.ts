/**
 * Redis from Debian's `redis-server` package (installed with apt-get when missing), run by us — not the Debian
 * service — on 127.0.0.1:SERVICES_REDIS_PORT (26379), daemonized, with its config, pid file and log in
 * `.services/redis`, and no persistence (a cache: Redis is never the source of truth).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, aptInstall, hasCommand, portOpen, terminate, waitFor } from '../processes.ts';
import { envPort, livePid, log, runSync as run, SERVICES_DIR, type Service, type Settings, tail } from './service.ts';

const PORT = envPort('SERVICES_REDIS_PORT', 26379);
const DIR = join(SERVICES_DIR, 'redis');
const CONF = join(DIR, 'redis.conf');
const PIDFILE = join(DIR, 'redis.pid');
const LOGFILE = join(DIR, 'redis.log');

function ensureInstalled(): void {
  if (hasCommand('redis-server') && hasCommand('redis-cli')) return;
  aptInstall(['redis-server'], 'Redis (redis-server)');
  if (!hasCommand('redis-server')) throw new Error('installing redis-server did not provide the redis-server command');
}

const quote = (path: string) => `"${path.replace(/(["\\])/g, '\\$1')}"`;

function writeConfig(): void {
  mkdirSync(DIR, { recursive: true });
  writeFileSync(
    CONF,
    [
      '# Written by scripts/services/redis.ts on every start; edit that file, not this one.',
      'bind 127.0.0.1',
      'protected-mode yes',
      `port ${PORT}`,
      'daemonize yes',
      `pidfile ${quote(PIDFILE)}`,
      `logfile ${quote(LOGFILE)}`,
      'loglevel notice',
      `dir ${quote(DIR)}`,
      'appendonly no',
      'save ""',
      '',
    ].join('\n'),
  );
}

/** The pid of our redis-server (from its pid file), if it is alive. */
const ourPid = (): number | undefined => livePid(PIDFILE, 'redis-server');

function ping(): boolean {
  return run('redis-cli', ['-h', '127.0.0.1', '-p', String(PORT), 'ping'], { allowFail: true }).trim() === 'PONG';
}

/** The port the running server was started with (its config is rewritten only on start). */
function configuredPort(): string | undefined {
  return existsSync(CONF) ? /^port (\d+)$/m.exec(readFileSync(CONF, 'utf8'))?.[1] : undefined;
}

async function up(): Promise<Settings> {
  ensureInstalled();
  const pid = ourPid();
  if (pid !== undefined) {
    if (configuredPort() !== String(PORT)) {
      throw new Error(`Redis runs with another port (see ${CONF}); stop it first: npm run services:down -- redis`);
    }
    await waitFor('Redis to answer PING', 20_000, () => (ping() ? true : undefined));
    log(`Redis already running on 127.0.0.1:${PORT}`);
  } else {
    if (await portOpen(PORT)) {
      throw new Error(`127.0.0.1:${PORT} is taken by another process; set SERVICES_REDIS_PORT to a free port`);
    }
    log(`starting Redis on 127.0.0.1:${PORT}`);
    writeConfig();
    rmSync(PIDFILE, { force: true });
    run('redis-server', [CONF], { cwd: DIR });
    try {
      await waitFor('Redis to answer PING', 20_000, () => (ping() ? true : undefined));
    } catch (error) {
      throw new Error(`${(error as Error).message}; ${LOGFILE}:\n${tail(LOGFILE)}`);
    }
  }
  return { REDIS_URL: `redis://127.0.0.1:${PORT}` };
}

async function down(): Promise<void> {
  const pid = ourPid();
  if (pid === undefined) {
    log('Redis was not running');
    return;
  }
  const port = configuredPort() ?? String(PORT);
  run('redis-cli', ['-h', '127.0.0.1', '-p', port, 'shutdown', 'nosave'], { allowFail: true });
  try {
    await waitFor('Redis to exit', 10_000, () => (alive(pid) ? undefined : true));
  } catch {
    await terminate([pid], 'Redis', 5_000);
  }
  if (existsSync(PIDFILE)) rmSync(PIDFILE, { force: true });
  log('Redis stopped');
}

export const redis: Service = {
  name: 'redis',
  up,
  down,
  running: async () => ourPid() !== undefined && ping(),
  pids: () => [ourPid()].filter((pid) => pid !== undefined),
};
