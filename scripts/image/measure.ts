/**
 * What an image weighs: its uncompressed size, its layers as a registry would store them (tar, gzip, zstd; pushed
 * by buildah into an OCI layout in .cache/image/oci and read back from the manifest), and its largest files.
 *
 * `node scripts/image/measure.ts [IMAGE] [--zstd]` prints a table; scripts/image/build.ts calls it after a build.
 */
import { lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, ensureDir, IMAGE, isMain, log, mb, run } from './common.ts';

export interface LayerSizes {
  readonly diffId: string;
  readonly tarBytes: number;
  readonly gzipBytes: number;
  readonly zstdBytes?: number;
}

export interface FileSize {
  readonly path: string;
  readonly bytes: number;
}

export interface ImageMeasurement {
  readonly image: string;
  readonly id: string;
  /** What `podman image inspect` calls Size: the unpacked layers in container storage. */
  readonly storageBytes: number;
  readonly layers: readonly LayerSizes[];
  readonly tarBytes: number;
  readonly gzipBytes: number;
  readonly zstdBytes?: number;
  readonly fileCount: number;
  readonly largestFiles: readonly FileSize[];
  /** Bytes of regular files under each top-level group (the Node binary, libraries, bundles, the rest). */
  readonly groups: Readonly<Record<string, number>>;
}

interface OciDescriptor {
  readonly digest: string;
  readonly size: number;
}

/** Layer sizes and diff ids of the OCI layout in `dir`, in manifest order. */
function layoutLayers(dir: string): { sizes: number[]; diffIds: string[] } {
  const blob = (digest: string) => join(dir, 'blobs', ...digest.split(':'));
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
  const manifestRef = index.manifests[0];
  if (!manifestRef) throw new Error(`${dir}/index.json lists no manifest`);
  const manifest = JSON.parse(readFileSync(blob(manifestRef.digest), 'utf8')) as {
    config: OciDescriptor;
    layers: OciDescriptor[];
  };
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return { sizes: manifest.layers.map((layer) => layer.size), diffIds: config.rootfs.diff_ids };
}

/**
 * The layers as plain tars (`podman image save --uncompressed`), or compressed as `buildah push` sends them to a
 * registry (its default level; `buildah push --disable-compression` is no measure: it reuses the gzip blobs it
 * remembers).
 */
function layerSizes(image: string, compression: 'none' | 'gzip' | 'zstd'): { sizes: number[]; diffIds: string[] } {
  const dir = join(ensureDir(join(CACHE_DIR, 'oci')), compression);
  rmSync(dir, { recursive: true, force: true });
  try {
    if (compression === 'none') {
      run('podman', ['image', 'save', '--quiet', '--uncompressed', '--format', 'oci-dir', '--output', dir, image]);
    } else {
      run('buildah', ['push', '--quiet', '--compression-format', compression, image, `oci:${dir}`]);
    }
    return layoutLayers(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function groupOf(path: string): string {
  if (path.startsWith('/nodejs/')) return 'node binary (/nodejs)';
  if (path.startsWith('/app/')) return 'bundles (/app/dist)';
  if (/^\/(usr\/)?lib(64)?\//.test(path)) return 'shared libraries';
  if (path.startsWith('/etc/ssl/')) return 'CA certificates';
  return 'other';
}

/** Every regular file of the image's root filesystem, mounted read-only by podman (root only). */
function filesOf(image: string): FileSize[] {
  const root = run('podman', ['image', 'mount', image]).trim();
  try {
    const files: FileSize[] = [];
    const walk = (dir: string, prefix: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = `${prefix}/${entry.name}`;
        if (entry.isDirectory()) walk(join(dir, entry.name), path);
        else if (entry.isFile()) files.push({ path, bytes: lstatSync(join(dir, entry.name)).size });
      }
    };
    walk(root, '');
    return files.sort((a, b) => b.bytes - a.bytes);
  } finally {
    run('podman', ['image', 'unmount', image]);
  }
}

export function measureImage(image: string, options: { zstd?: boolean } = {}): ImageMeasurement {
  const [inspected] = JSON.parse(run('podman', ['image', 'inspect', image])) as Array<{ Id: string; Size: number }>;
  if (!inspected) throw new Error(`podman image inspect ${image} returned nothing`);
  log(`measuring ${image}: pushing its layers into OCI layouts (tar, gzip${options.zstd ? ', zstd' : ''})`);
  const tar = layerSizes(image, 'none');
  const gzip = layerSizes(image, 'gzip');
  const zstd = options.zstd ? layerSizes(image, 'zstd') : undefined;
  const perLayer = tar.diffIds.map((diffId, i) => ({
    diffId,
    tarBytes: tar.sizes[i] ?? 0,
    gzipBytes: gzip.sizes[i] ?? 0,
    ...(zstd && { zstdBytes: zstd.sizes[i] ?? 0 }),
  }));
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const files = filesOf(image);
  const groups: Record<string, number> = {};
  for (const file of files) groups[groupOf(file.path)] = (groups[groupOf(file.path)] ?? 0) + file.bytes;
  return {
    image,
    id: inspected.Id,
    storageBytes: inspected.Size,
    layers: perLayer,
    tarBytes: sum(tar.sizes),
    gzipBytes: sum(gzip.sizes),
    ...(zstd && { zstdBytes: sum(zstd.sizes) }),
    fileCount: files.length,
    largestFiles: files.slice(0, 10),
    groups,
  };
}

export function formatMeasurement(m: ImageMeasurement): string {
  const lines = [
    `image ${m.image} (${m.id.slice(0, 12)}), ${m.fileCount} files`,
    `  uncompressed: ${mb(m.storageBytes)} in storage, ${mb(m.tarBytes)} as layer tars`,
    `  compressed:   ${mb(m.gzipBytes)} gzip${m.zstdBytes === undefined ? '' : `, ${mb(m.zstdBytes)} zstd`}`,
    '  layers (tar → gzip):',
    ...m.layers.map((l) => `    ${l.diffId.slice(7, 19)}  ${mb(l.tarBytes)} → ${mb(l.gzipBytes)}`),
    '  by part:',
    ...Object.entries(m.groups)
      .sort((a, b) => b[1] - a[1])
      .map(([group, bytes]) => `    ${mb(bytes).padStart(9)}  ${group}`),
    '  largest files:',
    ...m.largestFiles.map((f) => `    ${mb(f.bytes).padStart(9)}  ${f.path}`),
  ];
  return `${lines.join('\n')}\n`;
}

if (isMain(import.meta.url)) {
  const image = process.argv.slice(2).find((arg) => !arg.startsWith('--')) ?? IMAGE;
  process.stdout.write(formatMeasurement(measureImage(image, { zstd: process.argv.includes('--zstd') })));
}
