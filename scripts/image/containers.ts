/**
 * The image's containers, run by podman as the Knative manifests run the pods: the limits and grace period of
 * knative/base/<function>.yaml, the ConfigMap of knative/base/settings.env, read-only root without tmpfs (as
 * readOnlyRootFilesystem), uid 65532, no capabilities, no privilege escalation, NODE_OPTIONS from the image.
 *
 * Networking is `--network host` with the function on 127.0.0.1:$PORT: the services (and the address Kafka
 * advertises, 127.0.0.1:29092) are on the host's loopback. With slirp4netns or pasta the container reaches the
 * host's loopback only under another address (10.0.2.2), which the bootstrap connection can use but the broker's
 * advertised 127.0.0.1 cannot: inside the container that is the container itself. `-p 127.0.0.1:PORT:8080`
 * therefore has nothing to forward; $PORT plays its part (Knative sets PORT too).
 *
 * podman is given `--runtime runc` (crun fails on this machine's cgroup v1 layout) and explicit ulimits (the
 * defaults ask for more than the machine's hard limits: "setrlimit … Operation not permitted").
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, tryRun } from './common.ts';

export type FunctionName = 'ingest' | 'query';

/** What a pod of `name` gets from its Knative Service. */
export interface PodLimits {
  /** podman's form of the memory limit ("512m" for 512Mi). */
  readonly memory: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  /** timeoutSeconds, which Knative also makes terminationGracePeriodSeconds. */
  readonly gracePeriodMs: number;
}

export function podLimits(name: FunctionName): PodLimits {
  const manifest = readFileSync(join(ROOT, 'knative', 'base', `${name}.yaml`), 'utf8');
  const limits = /^\s+limits:\s*\n((?:\s+\w+:.*\n)+)/m.exec(manifest)?.[1] ?? '';
  const memory = /memory:\s*"?(\d+)Mi"?/.exec(limits)?.[1];
  const cpu = /cpu:\s*"?(\d+)(m?)"?/.exec(limits);
  const timeout = /^\s+timeoutSeconds:\s*(\d+)\s*$/m.exec(manifest)?.[1];
  if (memory === undefined || cpu?.[1] === undefined || timeout === undefined) {
    throw new Error(`knative/base/${name}.yaml: no resources.limits memory (Mi) and cpu, or no timeoutSeconds`);
  }
  return {
    memory: `${memory}m`,
    memoryBytes: Number(memory) * 1024 * 1024,
    cpus: cpu[2] === 'm' ? Number(cpu[1]) / 1000 : Number(cpu[1]),
    gracePeriodMs: Number(timeout) * 1000,
  };
}

/** KEY=VALUE lines of knative/base/settings.env: the ConfigMap every pod gets. */
export function knativeSettings(): Record<string, string> {
  return Object.fromEntries(
    readFileSync(join(ROOT, 'knative', 'base', 'settings.env'), 'utf8')
      .split('\n')
      .filter((line) => /^[A-Z_][A-Z0-9_]*=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

export interface ContainerOptions {
  readonly image: string;
  readonly name: string;
  /** The container's command after the entrypoint (node): the Knative Service's `args`. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Memory and CPU limits; omitted: none (for comparing against the limited start). */
  readonly limits?: { readonly memory: string; readonly cpus?: number };
  /** podman kills the container after this long, whatever happens to the caller. */
  readonly maxSeconds: number;
}

export interface MemorySample {
  /** What the cgroup charges now: anonymous memory plus page cache. */
  readonly usageBytes: number;
  /** The kernel's high-water mark of that charge (memory.max_usage_in_bytes, or memory.peak on cgroup v2). */
  readonly peakBytes: number | undefined;
  readonly anonBytes: number;
  /** usage minus inactive file pages: what kubelet calls the working set and evicts on. */
  readonly workingSetBytes: number;
}

export interface CpuThrottling {
  readonly periods: number;
  readonly throttledPeriods: number;
  readonly throttledMs: number;
}

export interface Container {
  readonly name: string;
  /** `performance.now()` and `Date.now()` just before `podman run` was spawned. */
  readonly spawnedAt: number;
  readonly spawnedAtWall: number;
  readonly exited: Promise<{ code: number | null; afterMs: number }>;
  output(): string;
  /** The container's stdout, as JSON log lines (other lines skipped). */
  logLines(): Array<Record<string, unknown>>;
  /** Resolves with the first log line whose `msg` is `message`; rejects on exit or after `timeoutMs`. */
  waitForLog(message: string, timeoutMs: number): Promise<Record<string, unknown>>;
  /** Sends `signal` to the container's PID 1 as the kubelet does (through the runtime, not to podman's client). */
  signal(signal: 'SIGTERM' | 'SIGKILL'): void;
  /** podman's state of it: host pid of PID 1, start time (epoch ms), cgroup path. */
  state(): { pid: number; startedAtMs: number; cgroupPath: string };
  memory(): MemorySample | undefined;
  cpuThrottling(): CpuThrottling | undefined;
  /** Node's own peak resident set (VmHWM of PID 1), while it runs. */
  peakRssBytes(): number | undefined;
  /** SIGKILL and removal, whatever state it is in. */
  remove(): Promise<void>;
}

const podmanFlags = (options: ContainerOptions): string[] => [
  '--runtime',
  'runc',
  'run',
  '--rm',
  '--name',
  options.name,
  '--network',
  'host',
  '--read-only',
  '--read-only-tmpfs=false',
  '--user',
  '65532:65532',
  '--cap-drop=all',
  '--security-opt',
  'no-new-privileges',
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=4096:4096',
  ...(options.limits ? ['--memory', options.limits.memory, '--memory-swap', options.limits.memory] : []),
  ...(options.limits?.cpus ? ['--cpus', String(options.limits.cpus)] : []),
  '--timeout',
  String(options.maxSeconds),
  ...Object.entries(options.env).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
  options.image,
  ...options.args,
];

function readNumbers(file: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value !== undefined) values[key] = Number(value);
  }
  return values;
}

function cgroupMemory(cgroupPath: string): MemorySample | undefined {
  const v2 = join('/sys/fs/cgroup', cgroupPath);
  if (existsSync(join(v2, 'memory.current'))) {
    const stat = readNumbers(join(v2, 'memory.stat'));
    const usage = Number(readFileSync(join(v2, 'memory.current'), 'utf8'));
    const peakFile = join(v2, 'memory.peak');
    return {
      usageBytes: usage,
      peakBytes: existsSync(peakFile) ? Number(readFileSync(peakFile, 'utf8')) : undefined,
      anonBytes: stat.anon ?? 0,
      workingSetBytes: usage - (stat.inactive_file ?? 0),
    };
  }
  const v1 = join('/sys/fs/cgroup/memory', cgroupPath);
  if (!existsSync(join(v1, 'memory.usage_in_bytes'))) return undefined;
  const stat = readNumbers(join(v1, 'memory.stat'));
  const usage = Number(readFileSync(join(v1, 'memory.usage_in_bytes'), 'utf8'));
  return {
    usageBytes: usage,
    peakBytes: Number(readFileSync(join(v1, 'memory.max_usage_in_bytes'), 'utf8')),
    anonBytes: stat.total_rss ?? 0,
    workingSetBytes: usage - (stat.total_inactive_file ?? 0),
  };
}

function cgroupCpu(cgroupPath: string): CpuThrottling | undefined {
  // cgroup v2 counts microseconds in the unified tree; v1 nanoseconds under the cpu controller.
  const v2 = join('/sys/fs/cgroup', cgroupPath, 'cpu.stat');
  const v1 = join('/sys/fs/cgroup/cpu', cgroupPath, 'cpu.stat');
  const file = existsSync(join('/sys/fs/cgroup', cgroupPath, 'memory.current')) ? v2 : v1;
  if (!existsSync(file)) return undefined;
  const stat = readNumbers(file);
  return {
    periods: stat.nr_periods ?? 0,
    throttledPeriods: stat.nr_throttled ?? 0,
    throttledMs: file === v2 ? (stat.throttled_usec ?? 0) / 1000 : (stat.throttled_time ?? 0) / 1e6,
  };
}

/** Starts the container attached (its stdout is podman's) and returns at once; nothing waits for readiness. */
export function startContainer(options: ContainerOptions): Container {
  const spawnedAt = performance.now();
  const spawnedAtWall = Date.now();
  const child: ChildProcess = spawn('podman', podmanFlags(options), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const check of waiters) check();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  let done = false;
  const exited = new Promise<{ code: number | null; afterMs: number }>((resolve) => {
    child.once('error', (error) => {
      err += String(error);
      resolve({ code: null, afterMs: performance.now() - spawnedAt });
    });
    child.once('close', (code) => resolve({ code, afterMs: performance.now() - spawnedAt }));
  });
  void exited.then(() => {
    done = true;
    for (const check of waiters) check();
  });
  let cachedState: { pid: number; startedAtMs: number; cgroupPath: string } | undefined;

  const logLines = () =>
    out
      .split('\n')
      .slice(0, -1)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });

  return {
    name: options.name,
    spawnedAt,
    spawnedAtWall,
    exited,
    output: () => `${out}${err}`,
    logLines,
    waitForLog: (message, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`${options.name}: no "${message}" log line within ${timeoutMs} ms:\n${out}${err}`.slice(-3000)),
          );
        }, timeoutMs);
        const check = () => {
          const found = logLines().find((line) => line.msg === message);
          if (found || done) {
            clearTimeout(timer);
            waiters.delete(check);
            if (found) resolve(found);
            else reject(new Error(`${options.name} exited before logging "${message}":\n${out}${err}`.slice(-3000)));
          }
        };
        waiters.add(check);
        check();
      }),
    signal: (signal) => {
      run('podman', ['kill', '--signal', signal, options.name]);
    },
    state: () => {
      cachedState ??= (() => {
        const [pid = '', startedAt = '', cgroupPath = ''] = run('podman', [
          'inspect',
          '--format',
          '{{.State.Pid}}|{{.State.StartedAt}}|{{.State.CgroupPath}}',
          options.name,
        ])
          .trim()
          .split('|');
        // "2026-12-02 14:49:58.041567484 +0000 UTC": Date.parse needs the ISO form and takes milliseconds only.
        const iso = /^(\S+) (\d\d:\d\d:\d\d)(\.\d{1,3})?\d* ([+-]\d\d)(\d\d)/.exec(startedAt);
        const startedAtMs = iso ? Date.parse(`${iso[1]}T${iso[2]}${iso[3] ?? ''}${iso[4]}:${iso[5]}`) : Number.NaN;
        return { pid: Number(pid), startedAtMs, cgroupPath };
      })();
      return cachedState;
    },
    memory() {
      return cgroupMemory(this.state().cgroupPath);
    },
    cpuThrottling() {
      return cgroupCpu(this.state().cgroupPath);
    },
    peakRssBytes() {
      const status = join('/proc', String(this.state().pid), 'status');
      const hwm = existsSync(status) ? /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(status, 'utf8'))?.[1] : undefined;
      return hwm === undefined ? undefined : Number(hwm) * 1024;
    },
    async remove() {
      if (!done) tryRun('podman', ['rm', '--force', '--time', '0', options.name]);
      await exited;
    },
  };
}
