/**
 * The container tools, from Debian's packages: buildah builds, podman runs with runc (crun fails on this
 * machine's hybrid cgroup v1 layout), wrk loads. Installed with apt-get when we are root, their .deb files kept
 * in .cache/image/apt so that a reinstall downloads nothing.
 */
import { join } from 'node:path';
import { APT_CACHE_DIR, ensureDir, isRoot, log, run, tryRun } from './common.ts';

/** Command → the Debian package that provides it. */
const TOOLS: Readonly<Record<string, string>> = { buildah: 'buildah', podman: 'podman', runc: 'runc', wrk: 'wrk' };

export type Availability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const hasCommand = (cmd: string): boolean => tryRun('sh', ['-c', `command -v ${cmd}`]).status === 0;

function aptArgs(): string[] {
  // apt wants the partial/ folder to exist in an archive cache it is pointed at.
  ensureDir(join(APT_CACHE_DIR, 'partial'));
  // Recommends (slirp4netns, fuse-overlayfs, uidmap…) serve rootless podman; these scripts run it as root.
  return ['-y', '-qq', '--no-install-recommends', '-o', `Dir::Cache::Archives=${APT_CACHE_DIR}/`];
}

function aptInstall(packages: string[]): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const first = tryRun('apt-get', ['install', ...aptArgs(), ...packages], { env });
  if (first.status === 0) return;
  // Most often the package lists are missing or stale on a fresh machine: update once and retry.
  log(`apt-get install failed (${first.stderr.trim().split('\n').at(-1)}); running apt-get update and retrying`);
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', ...aptArgs(), ...packages], { env });
}

/**
 * As root: makes buildah, podman, runc and wrk available (installing the missing ones) and checks that podman
 * answers with runc. Never throws: what is missing or failing is the reason.
 */
export function ensureTools(): Availability {
  if (!isRoot) {
    return {
      ok: false,
      reason:
        'not root: the image scripts install buildah, podman, runc and wrk with apt-get and run podman as root (the base is assembled with chown, images are mounted to be measured); rootless podman is not supported',
    };
  }
  const missing = Object.keys(TOOLS).filter((cmd) => !hasCommand(cmd));
  if (missing.length > 0) {
    const packages = missing.map((cmd) => TOOLS[cmd] ?? cmd);
    log(`installing ${packages.join(' ')} from Debian packages (cache: .cache/image/apt)…`);
    try {
      aptInstall(packages);
    } catch (error) {
      return { ok: false, reason: error instanceof Error ? error.message : String(error) };
    }
  }
  const info = tryRun('podman', ['--runtime', 'runc', 'info', '--format', '{{.Host.OCIRuntime.Name}}']);
  if (info.status !== 0) {
    return {
      ok: false,
      reason: `\`podman --runtime runc info\` failed (exit ${info.status}): ${info.stderr.trim().slice(-1000)}`,
    };
  }
  return { ok: true };
}
