/**
 * `npm run image:test`: builds the image from dist/ as it is (scripts/image/build.ts --no-bundle; `npm run
 * image` also runs esbuild), then runs ingest and query from it as pods would and checks them
 * (scripts/image/checks.ts), against the services of DATABASE_URL, REDIS_URL and KAFKA_BROKERS when all three are
 * set (the test database; the suite's runner sets them), else of `node scripts/services.ts up` (its
 * TEST_DATABASE_URL), stopping afterwards the services that it started. Prints the report, writes it to
 * .cache/image/report.json, exits 1 if a check failed.
 *
 *   node scripts/image/run.ts [--no-build] [--idle-ms N] [--load-seconds N] [--start-runs N]
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { helpFromHeader } from '../help.ts';
import { buildImage } from './build.ts';
import { runImageChecks, type Services } from './checks.ts';
import { CACHE_DIR, ensureDir, IMAGE, log, ROOT } from './common.ts';
import { formatReport, verdicts } from './report.ts';
import { ensureTools } from './tools.ts';

helpFromHeader(import.meta.url);

const args = process.argv.slice(2);
const numberOf = (flag: string): number | undefined => {
  const at = args.indexOf(flag);
  return at === -1 ? undefined : Number(args[at + 1]);
};

/** The services' settings, and the names of those this call started (to stop again). */
function services(): { settings: Services; started: string[] } {
  const { DATABASE_URL, REDIS_URL, KAFKA_BROKERS } = process.env;
  if (DATABASE_URL && REDIS_URL && KAFKA_BROKERS)
    return { settings: { DATABASE_URL, REDIS_URL, KAFKA_BROKERS }, started: [] };
  const script = join(ROOT, 'scripts', 'services.ts');
  const status = spawnSync(process.execPath, [script, 'status'], { cwd: ROOT, encoding: 'utf8' });
  const stopped = [...`${status.stdout}`.matchAll(/^(\w+) stopped$/gm)].map((m) => m[1] ?? '');
  const up = spawnSync(process.execPath, [script, 'up'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (up.status !== 0) throw new Error(`node scripts/services.ts up failed (exit ${up.status})`);
  const exported = Object.fromEntries(
    [...up.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']),
  );
  const database = exported.TEST_DATABASE_URL ?? exported.DATABASE_URL;
  if (!database || !exported.REDIS_URL || !exported.KAFKA_BROKERS) {
    throw new Error(`node scripts/services.ts up printed no DATABASE_URL, REDIS_URL and KAFKA_BROKERS:\n${up.stdout}`);
  }
  return {
    settings: { DATABASE_URL: database, REDIS_URL: exported.REDIS_URL, KAFKA_BROKERS: exported.KAFKA_BROKERS },
    started: stopped,
  };
}

let started: string[] = [];
try {
  const tools = ensureTools();
  if (!tools.ok) throw new Error(`podman cannot run here: ${tools.reason}`);
  if (!args.includes('--no-build')) {
    const built = await buildImage({ bundle: false });
    log(`image ${built.image} (${built.id.slice(0, 12)}) ready in ${(built.buildMs / 1000).toFixed(1)} s`);
  }
  const backing = services();
  started = backing.started;
  const idleMs = numberOf('--idle-ms');
  const loadSeconds = numberOf('--load-seconds');
  const startRuns = numberOf('--start-runs');
  const report = await runImageChecks({
    image: IMAGE,
    services: backing.settings,
    ...(idleMs !== undefined && { idleMs }),
    ...(loadSeconds !== undefined && { loadSeconds }),
    ...(startRuns !== undefined && { startRuns }),
  });
  writeFileSync(join(ensureDir(CACHE_DIR), 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(formatReport(report));
  const failed = verdicts(report).filter((verdict) => !verdict.ok);
  process.stdout.write(
    `\n${failed.length === 0 ? 'all image checks passed' : `${failed.length} image checks failed`}\n`,
  );
  process.exitCode = failed.length === 0 ? 0 : 1;
} catch (error) {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
} finally {
  if (started.length > 0) {
    spawnSync(process.execPath, [join(ROOT, 'scripts', 'services.ts'), 'down', ...started], {
      cwd: ROOT,
      stdio: 'inherit',
    });
  }
}
