import { pino } from 'pino';
import { activeTraceIds } from './tracing.ts';

export type Logger = pino.Logger;

export interface LoggerOptions {
  readonly level: string;
  readonly service: string;
  readonly revision: string;
}

/** Where log lines go: buffered, so a request's access line costs a memory copy, not a write(2). */
export interface LogSink {
  write(line: string): void;
  /** Writes out what is buffered; called before the process exits. */
  flushSync(): void;
}

/** What a process logs with: the pino logger and the sink it shares with the access log. */
export interface Logging {
  readonly logger: Logger;
  readonly sink: LogSink | undefined;
  readonly level: string;
  readonly base: { readonly service: string; readonly revision: string };
}

// 4 KiB at a time, written asynchronously; at least every FLUSH_MS so that a quiet process's lines still show up
// promptly (probes and operators watch for "ready to serve"); flushed at shutdown and on a fatal error.
const BUFFER_BYTES = 4096;
const FLUSH_MS = 200;

/** JSON lines on stdout; every line names the Knative service and revision that wrote it. */
export function createLogging({ level, service, revision }: LoggerOptions): Logging {
  const sink = pino.destination({ dest: 1, minLength: BUFFER_BYTES, sync: false });
  // (flush() does nothing while a write is under way; an idle beat costs one empty write.)
  setInterval(() => sink.flush(), FLUSH_MS).unref();
  const logger = pino(
    {
      level,
      base: { service, revision },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Every line written inside a traced request carries its trace and span ids.
      mixin: () => activeTraceIds() ?? {},
    },
    sink,
  );
  return { logger, sink, level, base: { service, revision } };
}

/** A logger that drops everything, for tests that assert on behaviour rather than on logs. */
export const createSilentLogger = (): Logger => pino({ level: 'silent' });
