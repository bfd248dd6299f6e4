import { ConfigError, loadConfig, type ServiceConfig } from '#lib/config';
import { createLogger, type Logger } from '#lib/observability';

/**
 * The first lines of every process entry: parse the environment once, or print every problem and exit
 * non-zero; then a logger configured from it. Unhandled rejections are fatal rather than silently lost.
 */
export function bootstrap(env: Readonly<Record<string, string | undefined>>): {
  config: ServiceConfig;
  logger: Logger;
} {
  let config: ServiceConfig;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  const logger = createLogger({ level: config.logLevel, service: config.service, revision: config.revision });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection');
    process.exit(1);
  });
  return { config, logger };
}
