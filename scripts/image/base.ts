/**
 * The local stand-in for gcr.io/distroless/nodejs24-debian12:nonroot, assembled from what this machine's
 * registries give, because no container registry is reachable here:
 * - /nodejs/bin/node: the Node binary the project pins (the `node` devDependency, node_modules/node/bin/node);
 * - the shared libraries that binary loads (ldd's closure), taken from Debian 12's libc6, libgcc-s1 and libstdc++6
 *   .deb files (apt-get download, kept in .cache/image/apt) rather than from the host's own files;
 * - /etc/ssl/certs/ca-certificates.crt from Debian's ca-certificates, and a dpkg status entry per package so that
 *   image scanners see which Debian versions the files come from, as distroless does;
 * - /etc/passwd and /etc/group with root, nobody and nonroot (65532), /home/nonroot, /tmp, /etc/nsswitch.conf.
 * No shell, no package manager, no tzdata (JavaScript's Date and Intl use the ICU data inside the Node binary).
 *
 * The layer is a tar with sorted names, numeric owners and mtime 0, committed with timestamp 0: the same inputs
 * give the same image id, so a repeated build finds it in container storage and assembles nothing. The tar is kept
 * in .cache/image/base/ to re-import when the storage lost the image.
 *
 * `node scripts/image/base.ts [--strip-node]` prints the image reference. Needs root (or `buildah unshare`): the
 * files' owners are set with chown before they are packed.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  createReadStream,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { APT_CACHE_DIR, CACHE_DIR, ensureDir, isMain, log, ROOT, run, tryRun } from './common.ts';

const BASE_REPOSITORY = 'localhost/data-service-base';
/** Bumped when the assembly itself changes, so that an old cached base is not taken for a new one. */
const ASSEMBLY_VERSION = 1;
const DEBIAN_PACKAGES = ['libc6', 'libgcc-s1', 'libstdc++6', 'ca-certificates'] as const;
const LIBRARY_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'];
const NODE_PATH = join(ROOT, 'node_modules', 'node', 'bin', 'node');
const NONROOT = 65532;

export interface BaseOptions {
  /** `strip` the Node binary: −18 MB, but no native symbols for perf, --prof or a core dump (docs/image.md). */
  readonly stripNode?: boolean;
}

export interface Base {
  readonly ref: string;
  readonly nodeVersion: string;
  readonly debs: readonly string[];
  /** Whether this call assembled it (false: found in container storage or re-imported from the cached tar). */
  readonly assembled: boolean;
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

function pinnedNode(): { version: string } {
  if (!existsSync(NODE_PATH)) {
    throw new Error(`${NODE_PATH} is missing: run npm ci (the \`node\` devDependency brings the Node 24 binary)`);
  }
  const { version } = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'node', 'package.json'), 'utf8')) as {
    version: string;
  };
  const reported = run(NODE_PATH, ['--version']).trim();
  if (reported !== `v${version}`) throw new Error(`${NODE_PATH} reports ${reported}, its package says ${version}`);
  return { version };
}

/** The .deb file of each package's candidate version, downloaded into the apt cache unless already there. */
function debianPackages(): string[] {
  ensureDir(APT_CACHE_DIR);
  return DEBIAN_PACKAGES.map((name) => {
    const show = tryRun('apt-cache', ['show', '--no-all-versions', name]);
    const filename = /^Filename: (.+)$/m.exec(show.stdout)?.[1];
    if (filename === undefined) {
      const cached = readdirSync(APT_CACHE_DIR).find((file) => file.startsWith(`${name}_`) && file.endsWith('.deb'));
      if (cached) return join(APT_CACHE_DIR, cached);
      throw new Error(`\`apt-cache show ${name}\` found no candidate (run apt-get update): ${show.stderr.trim()}`);
    }
    const path = join(APT_CACHE_DIR, decodeURIComponent(basename(filename)));
    if (!existsSync(path)) {
      log(`apt-get download ${name}`);
      run('apt-get', ['download', '-qq', name], { cwd: APT_CACHE_DIR });
    }
    if (!existsSync(path)) throw new Error(`apt-get download ${name} did not produce ${path}`);
    return path;
  });
}

/** Sonames of ldd's closure of `binary`, and its program interpreter (the path it asks the kernel for). */
function sharedLibraries(binary: string): { sonames: string[]; interpreter: string } {
  const sonames: string[] = [];
  let interpreter: string | undefined;
  for (const line of run('ldd', [binary]).split('\n')) {
    const linked = /^\s*(\S+) => (\S+)/.exec(line);
    if (linked?.[1]) sonames.push(linked[1]);
    const direct = /^\s*(\/\S+) \(0x/.exec(line);
    if (direct?.[1]) interpreter = direct[1];
  }
  if (interpreter === undefined) throw new Error(`ldd ${binary} names no program interpreter`);
  return { sonames, interpreter };
}

/** Copies `soname` (and the file its symlink names) from the extracted packages into the same folder of `rootfs`. */
function copyLibrary(packages: string, rootfs: string, soname: string): void {
  for (const dir of LIBRARY_DIRS) {
    const source = join(packages, dir, soname);
    if (!existsSync(source)) continue;
    ensureDir(join(rootfs, dir));
    if (lstatSync(source).isSymbolicLink()) {
      const target = readlinkSync(source);
      if (target.includes('/')) throw new Error(`${soname} links outside its folder (${target})`);
      copyFileSync(join(packages, dir, target), join(rootfs, dir, target));
      symlinkSync(target, join(rootfs, dir, soname));
    } else {
      copyFileSync(source, join(rootfs, dir, soname));
    }
    return;
  }
  throw new Error(`the Node binary needs ${soname}, which none of ${DEBIAN_PACKAGES.join(', ')} provides`);
}

const PASSWD = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:${NONROOT}:${NONROOT}:nonroot:/home/nonroot:/sbin/nologin
`;
const GROUP = `root:x:0:
nobody:x:65534:
nonroot:x:${NONROOT}:
`;

function assembleRootfs(stage: string, debs: readonly string[], options: BaseOptions): string {
  const packages = join(stage, 'packages');
  const rootfs = join(stage, 'rootfs');
  rmSync(stage, { recursive: true, force: true });
  ensureDir(packages);
  for (const deb of debs) run('dpkg-deb', ['-x', deb, packages]);

  const nodeDir = ensureDir(join(rootfs, 'nodejs', 'bin'));
  if (options.stripNode) run('strip', ['-o', join(nodeDir, 'node'), NODE_PATH]);
  else copyFileSync(NODE_PATH, join(nodeDir, 'node'));
  chmodSync(join(nodeDir, 'node'), 0o755);

  const { sonames, interpreter } = sharedLibraries(NODE_PATH);
  for (const soname of [...sonames, basename(interpreter)]) copyLibrary(packages, rootfs, soname);
  // The binary asks for /lib64/ld-linux-x86-64.so.2; libc6 ships it as this symlink.
  ensureDir(join(rootfs, dirname(interpreter).slice(1)));
  symlinkSync(`/lib/x86_64-linux-gnu/${basename(interpreter)}`, join(rootfs, interpreter.slice(1)));

  // What update-ca-certificates would write: every Mozilla certificate of the package, in name order.
  const mozilla = join(packages, 'usr', 'share', 'ca-certificates', 'mozilla');
  const certificates = readdirSync(mozilla)
    .filter((file) => file.endsWith('.crt'))
    .sort()
    .map((file) => readFileSync(join(mozilla, file), 'utf8').trimEnd())
    .join('\n');
  writeFileSync(join(ensureDir(join(rootfs, 'etc', 'ssl', 'certs')), 'ca-certificates.crt'), `${certificates}\n`);

  const etc = join(rootfs, 'etc');
  writeFileSync(join(etc, 'passwd'), PASSWD);
  writeFileSync(join(etc, 'group'), GROUP);
  writeFileSync(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  writeFileSync(
    join(etc, 'os-release'),
    'PRETTY_NAME="data-service local base (Debian 12 libraries, no package manager)"\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
  );
  const statusDir = ensureDir(join(rootfs, 'var', 'lib', 'dpkg', 'status.d'));
  for (const deb of debs) {
    const control = run('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Source', 'Maintainer']);
    const name = /^Package: (.+)$/m.exec(control)?.[1] ?? basename(deb);
    writeFileSync(join(statusDir, name), `${control.trimEnd()}\nStatus: install ok installed\n`);
    const copyright = join(packages, 'usr', 'share', 'doc', name, 'copyright');
    if (existsSync(copyright)) {
      copyFileSync(copyright, join(ensureDir(join(rootfs, 'usr', 'share', 'doc', name)), 'copyright'));
    }
  }

  ensureDir(join(rootfs, 'root'));
  chmodSync(join(rootfs, 'root'), 0o700);
  ensureDir(join(rootfs, 'tmp'));
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  const home = ensureDir(join(rootfs, 'home', 'nonroot'));
  chmodSync(home, 0o700);
  try {
    chownSync(home, NONROOT, NONROOT);
  } catch (error) {
    throw new Error(
      `chown ${NONROOT} ${home}: ${String(error)}; assemble the base as root or under \`buildah unshare\``,
    );
  }
  rmSync(packages, { recursive: true, force: true });
  return rootfs;
}

const imageExists = (ref: string): boolean => tryRun('podman', ['image', 'exists', ref]).status === 0;

function commitBase(tarball: string, ref: string, nodeVersion: string): void {
  const container = run('buildah', ['from', 'scratch']).trim();
  try {
    run('buildah', ['add', '--quiet', container, tarball, '/']);
    run('buildah', [
      'config',
      '--entrypoint',
      '["/nodejs/bin/node"]',
      '--user',
      `${NONROOT}:${NONROOT}`,
      '--workingdir',
      '/home/nonroot',
      '--env',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--env',
      'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt',
      '--os',
      'linux',
      '--arch',
      'amd64',
      '--label',
      `org.opencontainers.image.description=Node ${nodeVersion} on Debian 12 libraries, assembled by scripts/image/base.ts`,
      container,
    ]);
    run('buildah', ['commit', '--quiet', '--timestamp', '0', '--rm', container, ref]);
  } catch (error) {
    tryRun('buildah', ['rm', container]);
    throw error;
  }
}

/** The local base image, from container storage, the cached tar, or assembled anew (in that order). */
export async function ensureBase(options: BaseOptions = {}): Promise<Base> {
  const { version } = pinnedNode();
  const debs = debianPackages();
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        node: await sha256File(NODE_PATH),
        debs: debs.map((deb) => basename(deb)),
        strip: options.stripNode ?? false,
        ASSEMBLY_VERSION,
      }),
    )
    .digest('hex')
    .slice(0, 12);
  const ref = `${BASE_REPOSITORY}:node${version}${options.stripNode ? '-stripped' : ''}-${key}`;
  const result = { ref, nodeVersion: version, debs: debs.map((deb) => basename(deb)) };
  if (imageExists(ref)) return { ...result, assembled: false };

  const baseDir = ensureDir(join(CACHE_DIR, 'base'));
  const tarball = join(baseDir, `${key}.tar`);
  const assembled = !existsSync(tarball);
  if (assembled) {
    log(`assembling ${ref} from node_modules/node and ${result.debs.join(', ')}`);
    // Only the current base is kept: each tar is the size of the Node binary.
    for (const old of readdirSync(baseDir)) rmSync(join(baseDir, old), { recursive: true, force: true });
    const stage = join(baseDir, `${key}.stage`);
    const rootfs = assembleRootfs(stage, debs, options);
    run('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '-C', rootfs, '-cf', `${tarball}.partial`, '.']);
    run('mv', [`${tarball}.partial`, tarball]);
    rmSync(stage, { recursive: true, force: true });
  } else {
    log(`importing ${ref} from .cache/image/base/${key}.tar`);
  }
  commitBase(tarball, ref, version);
  return { ...result, assembled };
}

if (isMain(import.meta.url)) {
  const base = await ensureBase({ stripNode: process.argv.includes('--strip-node') });
  process.stdout.write(`${base.ref}\n`);
}
