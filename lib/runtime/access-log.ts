import type { Logging } from '#lib/observability';

export interface RequestSample {
  /** A route template (or `unmatched`), never a raw path: bounded cardinality in logs and metrics. */
  readonly route: string;
  readonly method: string;
  readonly status: number;
  readonly durationSeconds: number;
  readonly bytes: number;
  readonly requestId: string;
  readonly trace: { readonly trace_id: string; readonly span_id: string } | undefined;
}

export type AccessLog = (sample: RequestSample) => void;

/**
 * One JSON line per finished request, in the shape of the pino lines beside it (level, time, service, revision,
 * msg), built as one string: every field is a number or text the edge has already restricted (a validated
 * request id, a route template, an HTTP token method), so nothing needs escaping and no object is walked.
 */
export function createAccessLog({ logger, sink, base }: Logging): AccessLog | undefined {
  // At info only, as the pino lines: LOG_LEVEL=warn turns the access log off.
  if (sink === undefined || !logger.isLevelEnabled('info')) return undefined;
  const prefix = `{"level":"info","service":${JSON.stringify(base.service)},"revision":${JSON.stringify(base.revision)},"time":"`;
  return (sample) => {
    const trace = sample.trace ? `,"trace_id":"${sample.trace.trace_id}","span_id":"${sample.trace.span_id}"` : '';
    sink.write(
      `${prefix}${new Date().toISOString()}","request_id":"${sample.requestId}"${trace},"method":"${sample.method}","route":"${sample.route}","status":${sample.status},"duration_ms":${Math.round(sample.durationSeconds * 1_000_000) / 1000},"bytes":${sample.bytes},"msg":"request"}\n`,
    );
  };
}
