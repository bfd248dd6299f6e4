/**
 * The processes the chaos soak disturbs: `dist/ingest.mjs` and `dist/query.mjs` started by the bench lifecycle
 * (deployed settings, the relay inside ingest), and `dist/relay.mjs` as its own process beside them, so that a
 * relay can die alone. Each is one target with its current address, a count of how often it was killed (a
 * request cut by a kill is not a failure of the service) and a way to SIGKILL, SIGSTOP, SIGCONT and restart it.
 */
import { join } from 'node:path';
import type { BenchContext } from '../bench/lifecycle.ts';
import { DIST } from '../bench/lifecycle.ts';
import { freePort, type Started, sleep, startProcess, waitForHttp } from '../processes.ts';

export type TargetName = 'ingest' | 'query' | 'relay';

export interface Target {
  readonly name: TargetName;
  /** Where requests go now (a restarted process may listen elsewhere, as a new pod would). */
  url(): string;
  /** Kills so far; a request that saw this change, or began while `down`, was cut by a kill. */
  kills(): number;
  /** Killed and not yet serving again. */
  down(): boolean;
  pid(): number;
  kill(): void;
  stop(): void;
  resume(): void;
  /** Starts it again after a kill and waits until /readyz answers 200 (a few tries: the machine may be busy). */
  restart(): Promise<void>;
}

async function startRelay(ctx: BenchContext): Promise<{ url: string; process: Started }> {
  const port = await freePort();
  const started = startProcess(process.execPath, [join(DIST, 'relay.mjs')], {
    env: { ...ctx.functionEnv(), PORT: String(port), K_SERVICE: 'chaos-relay' },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/readyz`, { since: started.spawnedAt, process: started, timeoutMs: 30_000 });
  return { url, process: started };
}

/** Starts one target; `ingest` and `query` through the lifecycle's `startBundle`, as every bench does. */
export async function startTarget(ctx: BenchContext, name: TargetName, env: NodeJS.ProcessEnv): Promise<Target> {
  const start = async () =>
    name === 'relay' ? startRelay(ctx) : ctx.startBundle(name, { ...env, K_SERVICE: `chaos-${name}` });
  let current = await start();
  let kills = 0;
  let down = false;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(current.process.pid, sig);
    } catch {
      // already gone
    }
  };
  return {
    name,
    url: () => current.url,
    kills: () => kills,
    down: () => down,
    pid: () => current.process.pid,
    kill() {
      kills++;
      down = true;
      signal('SIGKILL');
    },
    // A stopped process is a slow one, not a dead one: what it holds is answered after SIGCONT.
    stop: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    async restart() {
      await current.process.exited;
      for (let attempt = 1; ; attempt++) {
        try {
          current = await start();
          down = false;
          return;
        } catch (error) {
          if (attempt >= 3) throw new Error(`${name} did not start again after its kill: ${String(error)}`);
          await sleep(1_000);
        }
      }
    },
  };
}
