/**
 * `--start`: the service for the run, as `npm start` runs it (`node scripts/start.ts`: migrate, both functions,
 * the gateway) on a free loopback port, with the environment's DATABASE_URL / REDIS_URL / KAFKA_BROKERS (an
 * embedded PostgreSQL when DATABASE_URL is unset). Stopped with SIGTERM (it drains) when the run ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, say } from './tools.ts';

export interface StartedService {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startService(timeoutMs = 90_000): Promise<StartedService> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts')], {
    cwd: ROOT,
    // A log line per request would cost the run CPU and flood the terminal.
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => process.stderr.write(chunk));
  const url = `http://127.0.0.1:${port}`;
  await new Promise<void>((ready, fail) => {
    let out = '';
    const timer = setTimeout(
      () => fail(new Error(`the service did not start within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out = (out + chunk).slice(-4096);
      if (out.includes('Data service ready on')) {
        clearTimeout(timer);
        ready();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`scripts/start.ts exited with code ${code} before it was ready`));
    });
  }).catch(async (error: unknown) => {
    await stop(child);
    throw error;
  });
  say(`service started on ${url} (scripts/start.ts, pid ${child.pid})`);
  return { url, stop: () => stop(child) };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 40_000);
  await exited;
  clearTimeout(kill);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
