/**
 * `npm run knative:check` — validates the Knative manifests offline, exiting non-zero on any finding:
 * - no arguments: knative/cluster and every folder of knative/overlays;
 * - `npm run knative:check -- PATH…`: those kustomize folders or YAML files only;
 * - `--list` (either form) also prints every rendered resource.
 * Every Service is validated against the cluster config in knative/cluster (config-features, config-autoscaler,
 * config-defaults), as the Knative webhook on that cluster would.
 *
 * The checker is the Go program in tools/knative-check (Knative Serving's own SetDefaults/Validate plus the
 * project rules). It is built with the machine's Go into .cache/bin/knative-check-<hash of its sources> when
 * missing; the first build downloads its modules from the Go module proxy.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { helpFromHeader } from './help.ts';
import { logger, ROOT } from './processes.ts';

helpFromHeader(import.meta.url);

const SOURCE_DIR = join(ROOT, 'tools', 'knative-check');
const CLUSTER_DIR = join(ROOT, 'knative', 'cluster');
const OVERLAYS_DIR = join(ROOT, 'knative', 'overlays');

const log = logger('knative:check');

/**
 * A digest of the checker's sources (Go files, go.mod, go.sum). The binary is named by it rather than rebuilt by
 * modification time: checkouts of different branches may share one .cache (worktrees do), and a binary built
 * from one branch's rules must never check another branch's manifests.
 */
function sourcesDigest(): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(SOURCE_DIR)
    .filter((file) => file.endsWith('.go') || file === 'go.mod' || file === 'go.sum')
    .sort()) {
    hash
      .update(`${name}\0`)
      .update(readFileSync(join(SOURCE_DIR, name)))
      .update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

const BINARY = join(ROOT, '.cache', 'bin', `knative-check-${sourcesDigest()}`);

/** Builds the checker unless a binary of these sources exists; exits 2 with the reason when it cannot. */
function ensureBinary(): void {
  if (existsSync(BINARY)) return;
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) {
    log('Go is needed to build tools/knative-check (https://go.dev/dl/); `go version` failed.');
    process.exit(2);
  }
  log(`building tools/knative-check with ${go.stdout.trim()} (the first build downloads modules; a few minutes)…`);
  const started = performance.now();
  mkdirSync(dirname(BINARY), { recursive: true });
  // Built beside the target and renamed, so that a concurrent run never executes a half-written binary.
  const partial = `${BINARY}.${process.pid}.partial`;
  const build = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', partial, '.'], {
    cwd: SOURCE_DIR,
    // -mod=readonly: go.sum is the lock file; a build never edits it.
    env: { ...process.env, GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=readonly`.trim() },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (build.status !== 0) {
    log('building tools/knative-check failed (see above).');
    process.exit(2);
  }
  renameSync(partial, BINARY);
  log(`built ${relative(ROOT, BINARY)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

const args = process.argv.slice(2).filter((arg) => arg !== '--');
const flags = args.filter((arg) => arg === '--list').map(() => '-list');
// npm runs scripts in the package root; INIT_CWD is where `npm run` was typed, which relative paths mean.
const invokedIn = process.env.INIT_CWD ?? process.cwd();
const paths = args.filter((arg) => arg !== '--list').map((path) => (path === '-' ? path : resolve(invokedIn, path)));
const targets =
  paths.length > 0
    ? paths
    : [
        CLUSTER_DIR,
        ...readdirSync(OVERLAYS_DIR, { withFileTypes: true })
          .filter((entry) => entry.isDirectory())
          .map((entry) => join(OVERLAYS_DIR, entry.name))
          .sort(),
      ];

ensureBinary();
const result = spawnSync(
  BINARY,
  [
    ...flags,
    '-cluster',
    relative(process.cwd(), CLUSTER_DIR),
    ...targets.map((t) => (t === '-' ? t : relative(process.cwd(), t) || '.')),
  ],
  { stdio: 'inherit' },
);
if (result.error) {
  log(`cannot run ${BINARY}: ${result.error.message}`);
  process.exit(2);
}
process.exit(result.status ?? 2);
