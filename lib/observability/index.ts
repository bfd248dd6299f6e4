export { createLogger, createSilentLogger, type Logger, type LoggerOptions } from './logger.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export {
  activeTraceIds,
  currentTraceparent,
  extractContext,
  type Span,
  SpanKind,
  startProducerSpan,
  startTracing,
  type Tracing,
  type TracingOptions,
  tracingEnabled,
  withSpan,
} from './tracing.ts';
