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
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';

export type { Span };
export { SpanKind };

export interface TracingOptions {
  readonly serviceName: string;
  readonly revision: string;
  /** Probability that a trace started here is sampled; a caller's sampled flag wins (parent-based). */
  readonly sampleRatio: number;
  /**
   * Whether a caller's sampled flag decides (parent-based). Off (the default), a caller's traceparent still names
   * the trace joined, but this service samples at its own ratio: the internet cannot make it trace everything.
   */
  readonly trustIncoming?: boolean;
  /** OTLP/HTTP endpoint (Jaeger, the OpenTelemetry Collector…), e.g. http://jaeger:4318. */
  readonly otlpEndpoint?: string;
  /** Replaces the OTLP exporter (tests use an in-memory one; spans are then exported synchronously). */
  readonly exporter?: SpanExporter;
}

export interface Tracing {
  shutdown(): Promise<void>;
}

let enabled = false;
let sampleRatio = 0;
let trustIncoming = false;
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
    // The ratio is applied before a request span exists (`requestTraceContext`), so that the 99 % of requests
    // left out cost nothing at all; whatever reaches the sampler as a root was already chosen.
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter)],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  sampleRatio = options.sampleRatio;
  trustIncoming = options.trustIncoming ?? false;
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

/**
 * Runs `work` inside a new active child span of the current one; records errors. A plain call when tracing is
 * off or nothing is being traced here: only a request span (`withRequestSpan`) starts a trace.
 */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  kind: SpanKind,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!enabled) return work(undefined);
  const active = context.active();
  const current = trace.getSpan(active);
  // (A remote parent extracted from traceparent is never "recording" here; the sampler still decides for it.)
  if (current === undefined || (!current.isRecording() && current.spanContext().isRemote !== true)) {
    return work(undefined);
  }
  return inSpan(name, attributes, kind, active, work);
}

/**
 * The trace a request joins: the caller's `traceparent` or a new trace, for a share `sampleRatio` of requests
 * (with `trustIncoming`, the caller's sampled flag decides instead); undefined means "not traced", and such a
 * request costs no span and no context.
 */
export function requestTraceContext(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): Context | undefined {
  if (!enabled) return undefined;
  if (headers.traceparent !== undefined && trustIncoming) return propagation.extract(ROOT_CONTEXT, headers);
  if (Math.random() >= sampleRatio) return undefined;
  if (headers.traceparent === undefined) return ROOT_CONTEXT;
  const extracted = propagation.extract(ROOT_CONTEXT, headers);
  const parent = trace.getSpanContext(extracted);
  // Sampled by our own choice: the caller's flag (perhaps 00) must not make the parent-based sampler drop it.
  return parent === undefined
    ? ROOT_CONTEXT
    : trace.setSpanContext(extracted, { ...parent, traceFlags: TraceFlags.SAMPLED });
}

/** Runs `work` in a server span under `parent` (from `requestTraceContext`), or plainly when undefined. */
export function withRequestSpan<T>(
  name: string,
  attributes: Attributes,
  parent: Context | undefined,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (parent === undefined) return work(undefined);
  return inSpan(name, attributes, SpanKind.SERVER, parent, work);
}

function inSpan<T>(
  name: string,
  attributes: Attributes,
  kind: SpanKind,
  parent: Context,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  return trace.getTracer(TRACER).startActiveSpan(name, { kind, attributes }, parent, async (span) => {
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
  // A write that was not traced has no trace to continue: its events travel without a span.
  if (!enabled || traceparent === undefined) return { span: undefined, headers: traceparent ? { traceparent } : {} };
  const parent = propagation.extract(ROOT_CONTEXT, { traceparent });
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
