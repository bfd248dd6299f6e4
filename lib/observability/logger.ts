import { pino } from 'pino';
import { activeTraceIds } from './tracing.ts';

export type Logger = pino.Logger;

export interface LoggerOptions {
  readonly level: string;
  readonly service: string;
  readonly revision: string;
}

/** JSON lines on stdout; every line names the Knative service and revision that wrote it. */
export function createLogger({ level, service, revision }: LoggerOptions): Logger {
  return pino({
    level,
    base: { service, revision },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // Every line written inside a traced request carries its trace and span ids.
    mixin: () => activeTraceIds() ?? {},
  });
}

/** A logger that drops everything, for tests that assert on behaviour rather than on logs. */
export const createSilentLogger = (): Logger => pino({ level: 'silent' });
