export {
  createLogging,
  createSilentLogger,
  type Logger,
  type LoggerOptions,
  type Logging,
  type LogSink,
} from './logger.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export {
  activeTraceIds,
  currentTraceparent,
  requestTraceContext,
  type Span,
  SpanKind,
  startProducerSpan,
  startTracing,
  type Tracing,
  type TracingOptions,
  tracingEnabled,
  withRequestSpan,
  withSpan,
} from './tracing.ts';
