/**
 * `npm run image`: builds the production image with Debian's buildah from the project's Dockerfile, on the base
 * scripts/image/base.ts assembles (or `--base REF`, an image already in container storage), with the bundles of
 * dist/ — the files the tests run — given as the `build` context that replaces the Dockerfile's build stage.
 * Nothing is pulled (`--pull=never`). Then measures it (scripts/image/measure.ts) and writes the figures to
 * .cache/image/measurement.json.
 *
 *   node scripts/image/build.ts [--no-bundle] [--strip-node] [--base REF] [--tag REF] [--no-measure] [--zstd]
 *
 * --no-bundle uses dist/ as it is (the test suite's `npm run build` made it) instead of running esbuild first.
 */
import { copyFileSync, cpSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { helpFromHeader } from '../help.ts';
import { ensureBase } from './base.ts';
import { BUNDLES, CACHE_DIR, DIST_DIR, ensureDir, IMAGE, isMain, log, ROOT, run, tryRun } from './common.ts';
import { formatMeasurement, type ImageMeasurement, measureImage } from './measure.ts';
import { ensureTools } from './tools.ts';

helpFromHeader(import.meta.url);

export interface BuildOptions {
  /** Run esbuild (`node esbuild.config.mjs`) before building; false takes dist/ as it is. */
  readonly bundle?: boolean;
  readonly stripNode?: boolean;
  readonly base?: string;
  readonly tag?: string;
}

export interface BuiltImage {
  readonly image: string;
  readonly id: string;
  readonly base: string;
  readonly buildMs: number;
}

/** The folder given as the `build` context: src/dist/<bundle>.mjs, the paths the Dockerfile copies from. */
function bundleContext(): string {
  const context = join(CACHE_DIR, 'context');
  rmSync(context, { recursive: true, force: true });
  const target = ensureDir(join(context, 'src', 'dist'));
  for (const name of BUNDLES) {
    const bundle = join(DIST_DIR, `${name}.mjs`);
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build first`);
    copyFileSync(bundle, join(target, `${name}.mjs`));
  }
  // The API page's renderer, which query serves at /docs (the Dockerfile copies dist/docs/ whole).
  cpSync(join(DIST_DIR, 'docs'), join(target, 'docs'), { recursive: true });
  // The bundles' code cache (esbuild.config.mjs), which the image points NODE_COMPILE_CACHE at.
  cpSync(join(DIST_DIR, '.compile-cache'), join(target, '.compile-cache'), { recursive: true });
  return context;
}

/** Git's time of the last commit: the image's `created`, so that the same tree builds the same image id. */
function sourceDateEpoch(): string {
  try {
    return run('git', ['-C', ROOT, 'log', '-1', '--format=%ct']).trim() || '0';
  } catch {
    return '0';
  }
}

export async function buildImage(options: BuildOptions = {}): Promise<BuiltImage> {
  const tools = ensureTools();
  if (!tools.ok) throw new Error(tools.reason);
  const started = performance.now();
  if (options.bundle ?? true) run(process.execPath, ['esbuild.config.mjs'], { cwd: ROOT, stdio: 'inherit' });
  const base = options.base ?? (await ensureBase({ stripNode: options.stripNode ?? false })).ref;
  const image = options.tag ?? IMAGE;
  const context = bundleContext();
  const previous = tryRun('podman', ['image', 'inspect', '--format', '{{.Id}}', image]).stdout.trim();
  log(`buildah bud: Dockerfile, BASE=${base}, build context = dist/ → ${image}`);
  run('buildah', [
    'bud',
    '--quiet',
    '--pull=never',
    '--timestamp',
    sourceDateEpoch(),
    '--build-arg',
    `BASE=${base}`,
    '--build-context',
    `build=${context}`,
    '--file',
    join(ROOT, 'Dockerfile'),
    '--tag',
    image,
    ROOT,
  ]);
  rmSync(context, { recursive: true, force: true });
  const id = run('podman', ['image', 'inspect', '--format', '{{.Id}}', image]).trim();
  // The previous build's image lost its tag; without this, every build would leave its layers behind.
  if (previous !== '' && previous !== id) tryRun('podman', ['image', 'rm', previous]);
  return { image, id, base, buildMs: performance.now() - started };
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const optionValue = (flag: string): string | undefined => {
    const at = args.indexOf(flag);
    return at === -1 ? undefined : args[at + 1];
  };
  const base = optionValue('--base');
  const tag = optionValue('--tag');
  try {
    const built = await buildImage({
      bundle: !args.includes('--no-bundle'),
      stripNode: args.includes('--strip-node'),
      ...(base !== undefined && { base }),
      ...(tag !== undefined && { tag }),
    });
    log(`built ${built.image} (${built.id.slice(0, 12)}) on ${built.base} in ${(built.buildMs / 1000).toFixed(1)} s`);
    if (!args.includes('--no-measure')) {
      const measurement: ImageMeasurement = measureImage(built.image, { zstd: args.includes('--zstd') });
      writeFileSync(
        join(CACHE_DIR, 'measurement.json'),
        `${JSON.stringify({ ...measurement, base: built.base }, null, 2)}\n`,
      );
      process.stdout.write(formatMeasurement(measurement));
    }
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  }
}
