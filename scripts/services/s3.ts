/**
 * An S3-compatible server for the archive tests: moto's server mode (Apache-2.0, from PyPI; MinIO is AGPL and
 * kept out) on 127.0.0.1:SERVICES_S3_PORT (29500), in a virtualenv cached in `.cache/s3-venv` together with
 * pyarrow, the independent Parquet reader the tests use to read an archived day. The venv is created by this
 * script (python3 -m venv + pip, pinned versions below) the first time and reused while its stamp matches, so a
 * fresh clone works and later starts take a second or two. The bucket is created on every start: moto keeps
 * everything in memory, so a restarted server is empty (the archiver copes with that: it checks the objects it
 * recorded before it trusts them).
 *
 * The settings it prints are the ones production reads from the standard places: S3_ENDPOINT and
 * S3_FORCE_PATH_STYLE (moto serves path-style), S3_BUCKET, and AWS_* credentials for the SDK's default chain.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { alive, aptInstall, hasCommand, portOpen, terminate, waitFor } from '../processes.ts';
import {
  CACHE_DIR,
  envPort,
  livePid,
  log,
  runSync as run,
  SERVICES_DIR,
  type Service,
  type Settings,
  tail,
} from './service.ts';

const PORT = envPort('SERVICES_S3_PORT', 29500);
const BUCKET = 'data-service-test';
const REGION = 'us-east-1';
const DIR = join(SERVICES_DIR, 's3');
const PIDFILE = join(DIR, 'moto.pid');
const LOGFILE = join(DIR, 'moto.log');
/** The Python environment: moto's server and pyarrow (tests read archived Parquet with it). */
export const S3_VENV = join(CACHE_DIR, 's3-venv');
const PACKAGES = ['moto[server]==5.2.5', 'pyarrow==26.0.1'];
const STAMP = join(S3_VENV, '.data-service-packages');
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };

/** The venv's python, after creating the venv and installing the pinned packages when they are missing. */
export function s3Python(): string {
  const python = join(S3_VENV, 'bin', 'python');
  if (existsSync(python) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === PACKAGES.join('\n')) return python;
  const system = ['python3', '/usr/bin/python3'].find(hasCommand);
  if (system === undefined) throw new Error('python3 is needed for the S3 test server (moto); install python3-venv');
  log(`creating ${S3_VENV} with ${PACKAGES.join(', ')} (once; cached afterwards)`);
  rmSync(S3_VENV, { recursive: true, force: true });
  mkdirSync(CACHE_DIR, { recursive: true });
  // Debian's python3 has no ensurepip without python3-venv.
  run(system, ['-m', 'venv', S3_VENV], { allowFail: true });
  if (!existsSync(join(S3_VENV, 'bin', 'pip'))) {
    rmSync(S3_VENV, { recursive: true, force: true });
    aptInstall(['python3-venv'], 'Python virtual environments (python3-venv)');
    run(system, ['-m', 'venv', S3_VENV]);
  }
  run(join(S3_VENV, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...PACKAGES]);
  writeFileSync(STAMP, PACKAGES.join('\n'));
  return python;
}

const ourPid = (): number | undefined => livePid(PIDFILE, 'moto');

const client = () =>
  new S3Client({
    endpoint: `http://127.0.0.1:${PORT}`,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: CREDENTIALS.AWS_ACCESS_KEY_ID, secretAccessKey: CREDENTIALS.AWS_SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });

async function serving(): Promise<boolean> {
  const s3 = client();
  try {
    await s3.send(new HeadBucketCommand({ Bucket: BUCKET }));
    return true;
  } catch (error) {
    // 404 (no bucket yet) still means the server answers.
    return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
  } finally {
    s3.destroy();
  }
}

async function ensureBucket(): Promise<void> {
  const s3 = client();
  try {
    await s3.send(new HeadBucketCommand({ Bucket: BUCKET })).catch(async () => {
      await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    });
  } finally {
    s3.destroy();
  }
}

async function up(): Promise<Settings> {
  const settings: Settings = {
    S3_ENDPOINT: `http://127.0.0.1:${PORT}`,
    S3_BUCKET: BUCKET,
    S3_REGION: REGION,
    S3_FORCE_PATH_STYLE: '1',
    ...CREDENTIALS,
  };
  const pid = ourPid();
  if (pid === undefined) {
    if (await portOpen(PORT)) {
      throw new Error(`127.0.0.1:${PORT} is taken by another process; set SERVICES_S3_PORT to a free port`);
    }
    const python = s3Python();
    mkdirSync(DIR, { recursive: true });
    log(`starting moto (S3) on 127.0.0.1:${PORT}`);
    const out = openSync(LOGFILE, 'a');
    writeSync(out, `\n=== ${new Date().toISOString()} starting moto on ${PORT}\n`);
    const child = spawn(python, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(PORT)], {
      cwd: DIR,
      detached: true,
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    if (child.pid === undefined) throw new Error('could not start moto');
    child.unref();
    writeFileSync(PIDFILE, `${child.pid}\n`);
    const started = child.pid;
    await waitFor('moto to answer S3 requests', 30_000, async () => {
      if (!alive(started)) throw new Error(`moto exited during start; ${LOGFILE}:\n${tail(LOGFILE)}`);
      return (await serving()) ? true : undefined;
    });
  } else {
    log(`S3 (moto) already running on 127.0.0.1:${PORT}`);
  }
  await ensureBucket();
  return settings;
}

async function down(): Promise<void> {
  const pid = ourPid();
  if (pid === undefined) {
    log('S3 (moto) was not running');
  } else {
    await terminate([pid], 'moto', 10_000);
    log('S3 (moto) stopped');
  }
  rmSync(PIDFILE, { force: true });
}

export const s3: Service = {
  name: 's3',
  up,
  down,
  running: async () => ourPid() !== undefined && (await serving()),
  pids: () => [ourPid()].filter((pid) => pid !== undefined),
};
