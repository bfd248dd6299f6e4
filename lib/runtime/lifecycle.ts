import type { AddressInfo } from 'node:net';
import type { Logger, LogSink } from '#lib/observability';
import { createRuntimeServer, type RuntimeServer, type RuntimeServerOptions } from './http-server.ts';

export interface RunFunctionOptions extends RuntimeServerOptions {
  readonly port: number;
  readonly host: string;
  readonly drainTimeoutMs: number;
  /** Releases the function's clients (pools, producers) after the last request finished. */
  readonly close: () => Promise<void>;
  readonly logger: Logger;
  /** Flushed before the process exits, so the last lines are not lost in the buffer. */
  readonly logSink?: LogSink | undefined;
}

export interface RunningFunction {
  readonly runtime: RuntimeServer;
  readonly address: AddressInfo;
  /** The same shutdown SIGTERM triggers; resolves with the exit code. */
  shutdown(reason: string): Promise<number>;
}

/**
 * Serves a function until SIGTERM/SIGINT, then: not ready, stop accepting, finish in-flight requests, close
 * clients, exit — all inside `drainTimeoutMs`, which must be below the pod's termination grace period.
 */
export async function runFunction(options: RunFunctionOptions): Promise<RunningFunction> {
  const { logger } = options;
  const runtime = createRuntimeServer(options);
  const address = await runtime.listen(options.port, options.host);
  logger.info(
    { port: address.port, host: address.address, function: options.functionName, pid: process.pid },
    'ready to serve',
  );
  // Lifecycle lines are rare and watched for (probes, operators, tests): they do not wait in the buffer.
  options.logSink?.flushSync();

  let stopping: Promise<number> | undefined;
  const shutdown = (reason: string): Promise<number> => {
    stopping ??= (async () => {
      const started = Date.now();
      // Log only once the listener is closed, so that the line means "no longer accepting".
      const drained = runtime.drain(options.drainTimeoutMs);
      logger.info({ reason, in_flight: runtime.inFlight() }, 'draining');
      options.logSink?.flushSync();
      const { completed, abandoned } = await drained;
      let code = completed ? 0 : 1;
      try {
        await options.close();
      } catch (error) {
        logger.error({ err: error }, 'closing clients failed');
        code = 1;
      }
      logger.info({ completed, abandoned, duration_ms: Date.now() - started }, 'stopped');
      return code;
    })();
    return stopping;
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void shutdown(signal).then((code) => {
        options.logSink?.flushSync();
        process.exit(code);
      });
    });
  }
  return { runtime, address, shutdown };
}
