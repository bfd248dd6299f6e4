/**
 * Injecting one fault and undoing it: a target process SIGKILLed (and started again) or SIGSTOPped (and
 * continued), or a backing service taken down and up with `scripts/services.ts` in a child process, as the fault
 * tests do, so that the load keeps flowing while it works. What was done and for how long is returned for the
 * report; `undoAllSync` is the last resort of an interrupted run.
 */
import { execaSync } from 'execa';
import { ROOT, run, sleep } from '../processes.ts';
import type { FaultKind } from './plan.ts';
import type { Target, TargetName } from './targets.ts';

type ServiceName = 'postgres' | 'redis' | 'kafka';

const SERVICE_OF: Partial<Record<FaultKind, ServiceName>> = {
  'restart-postgres': 'postgres',
  'redis-down': 'redis',
  'kafka-down': 'kafka',
};
const SERVICE_TIMEOUT_MS = 120_000;
/** Services this run took down and has not brought up again. */
const downServices = new Set<ServiceName>();
const stoppedTargets = new Set<Target>();

async function services(command: 'up' | 'down', name: ServiceName): Promise<void> {
  if (command === 'down') downServices.add(name);
  const result = await run(process.execPath, ['scripts/services.ts', command, name], {
    timeoutMs: SERVICE_TIMEOUT_MS,
    env: process.env,
  });
  if (result.exitCode !== 0) {
    const why = result.timedOut ? `did not finish within ${SERVICE_TIMEOUT_MS} ms` : `exited ${result.exitCode}`;
    throw new Error(`services.ts ${command} ${name} ${why}: ${result.stderr.slice(-2000)}`);
  }
  if (command === 'up') downServices.delete(name);
}

export interface Injected {
  readonly kind: FaultKind;
  /** ms since the load began: the fault applied, and undone (process serving again, service up). */
  readonly at_ms: number;
  readonly undone_at_ms: number;
  readonly hold_ms: number;
}

/** Applies `kind`, holds it `holdMs`, undoes it and resolves once everything serves again. */
export async function inject(
  kind: FaultKind,
  holdMs: number,
  targets: Readonly<Record<TargetName, Target>>,
  onApplied: () => void,
): Promise<void> {
  const [verb, object] = kind.split('-') as [string, string];
  if (verb === 'kill' || verb === 'stop') {
    const target = targets[object as TargetName];
    if (verb === 'kill') {
      target.kill();
      onApplied();
      await sleep(holdMs);
      await target.restart();
    } else {
      stoppedTargets.add(target);
      target.stop();
      onApplied();
      await sleep(holdMs);
      target.resume();
      stoppedTargets.delete(target);
    }
    return;
  }
  const service = SERVICE_OF[kind];
  if (service === undefined) throw new Error(`unknown fault ${kind}`);
  try {
    await services('down', service);
    onApplied();
    await sleep(holdMs);
  } finally {
    await services('up', service);
  }
}

/** Brings up every service this run took down (synchronously: from a signal handler, before the lifecycle's cleanup). */
export function undoAllSync(say: (message: string) => void): void {
  for (const target of stoppedTargets) target.resume();
  stoppedTargets.clear();
  if (downServices.size === 0) return;
  say(`bringing ${[...downServices].join(', ')} up again before cleaning up`);
  const result = execaSync(process.execPath, ['scripts/services.ts', 'up', ...downServices], {
    cwd: ROOT,
    reject: false,
    timeout: SERVICE_TIMEOUT_MS,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (result.exitCode === 0) downServices.clear();
}

/** Brings up every service this run took down (the end of a run, or after a failed step). */
export async function undoAll(): Promise<void> {
  for (const target of stoppedTargets) target.resume();
  stoppedTargets.clear();
  for (const name of [...downServices]) await services('up', name);
}
