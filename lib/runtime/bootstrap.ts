import { ConfigError, type LoadOptions, loadConfig, type ServiceConfig } from '#lib/config';
import { createLogging, type Logger, type Logging, startTracing, type Tracing } from '#lib/observability';

/**
 * The first lines of every process entry: parse the environment once, or print every problem and exit
 * non-zero; then a logger configured from it. Unhandled rejections are fatal rather than silently lost.
 */
export function bootstrap(
  env: Readonly<Record<string, string | undefined>>,
  options: LoadOptions = {},
): {
  config: ServiceConfig;
  logger: Logger;
  logging: Logging;
  tracing: Tracing;
} {
  let config: ServiceConfig;
  try {
    config = loadConfig(env, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  const logging = createLogging({ level: config.logLevel, service: config.service, revision: config.revision });
  const { logger } = logging;
  // Process warnings become log lines instead of free text on stderr. kafkajs 2.2.4 schedules a negative timeout
  // on every connection under Node 24 (tulios/kafkajs#1751, harmless): that one is kept at debug.
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning') logger.debug({ err: warning }, 'process warning');
    else logger.warn({ err: warning }, 'process warning');
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection');
    logging.sink?.flushSync();
    process.exit(1);
  });
  // Before any client exists, so that every span has a provider to go to.
  const tracing = startTracing({
    serviceName: config.service,
    revision: config.revision,
    sampleRatio: config.tracing.sampleRatio,
    trustIncoming: config.tracing.trustIncoming,
    ...(config.tracing.otlpEndpoint !== undefined && { otlpEndpoint: config.tracing.otlpEndpoint }),
  });
  return { config, logger, logging, tracing };
}
