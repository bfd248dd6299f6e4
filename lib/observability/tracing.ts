/**
 * Tracing with the OpenTelemetry API and SDK. The functions ship as esbuild bundles, where the require-hook
 * auto-instrumentations (http, pg, ioredis, kafkajs) cannot patch anything, so spans are opened at our own
 * boundaries instead: the HTTP server, each PostgreSQL operation, each Redis lookup and each Kafka publish, with
 * W3C `traceparent` extracted from requests and written into Kafka headers. When tracing is off (the default
 * without an OTLP endpoint), `withSpan` calls straight through: no context, no allocation.
 */
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';

export type { Span };
export { SpanKind };

export interface TracingOptions {
  readonly serviceName: string;
  readonly revision: string;
  /** Probability that a trace started here is sampled; a caller's sampled flag wins (parent-based). */
  readonly sampleRatio: number;
  /** OTLP/HTTP endpoint (Jaeger, the OpenTelemetry Collector…), e.g. http://jaeger:4318. */
  readonly otlpEndpoint?: string;
  /** Replaces the OTLP exporter (tests use an in-memory one; spans are then exported synchronously). */
  readonly exporter?: SpanExporter;
}

export interface Tracing {
  shutdown(): Promise<void>;
}

let enabled = false;
const TRACER = 'data-service';

/** Installs the tracer provider, context manager and W3C propagator; without an exporter tracing stays off. */
export function startTracing(options: TracingOptions): Tracing {
  if (options.exporter === undefined && options.otlpEndpoint === undefined) {
    return { shutdown: async () => undefined };
  }
  const exporter =
    options.exporter ?? new OTLPTraceExporter({ url: `${options.otlpEndpoint?.replace(/\/$/, '')}/v1/traces` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName, 'service.version': options.revision }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    spanProcessors: [options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter)],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  return {
    async shutdown() {
      enabled = false;
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** Whether spans are being recorded at all (cheap check for hot paths). */
export const tracingEnabled = (): boolean => enabled;

/** Runs `work` inside a new active span; records errors; a plain call when tracing is off. */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  kind: SpanKind,
  work: (span: Span | undefined) => Promise<T>,
  parent?: Context,
): Promise<T> {
  if (!enabled) return work(undefined);
  const active = parent ?? context.active();
  // Inside a request that was not sampled (99 % of them at the default ratio) children would not be recorded
  // either: skip them, so that tracing at 1 % costs about one span per request, not one per operation.
  const current = trace.getSpan(active);
  // (A remote parent extracted from traceparent is never "recording" here; the sampler still decides for it.)
  if (current !== undefined && !current.isRecording() && current.spanContext().isRemote !== true)
    return work(undefined);
  const tracer = trace.getTracer(TRACER);
  return tracer.startActiveSpan(name, { kind, attributes }, active, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The context a caller sent in `traceparent`/`tracestate` headers (ROOT when none or tracing is off). */
export function extractContext(headers: Readonly<Record<string, string | string[] | undefined>>): Context {
  if (!enabled) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers);
}

/** The active trace as a `traceparent` value, to carry it across an asynchronous hop (the outbox). */
export function currentTraceparent(): string | undefined {
  if (!enabled) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** Starts a producer span under a stored `traceparent` and returns the headers that continue it downstream. */
export function startProducerSpan(
  name: string,
  traceparent: string | undefined,
  attributes: Attributes,
): { span: Span | undefined; headers: Record<string, string> } {
  if (!enabled) return { span: undefined, headers: traceparent ? { traceparent } : {} };
  const parent = traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
  const span = trace.getTracer(TRACER).startSpan(name, { kind: SpanKind.PRODUCER, attributes }, parent);
  const headers: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), headers);
  return { span, headers };
}

/** trace_id / span_id of the active span, for log lines. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  if (!enabled) return undefined;
  const span = trace.getActiveSpan();
  if (span === undefined) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
