export { createLogger, createSilentLogger, type Logger, type LoggerOptions } from './logger.ts';
