/**
 * The request a handler sees: decoded once at the edge (lib/runtime), never re-derived below it. Not an imitation
 * of API Gateway or Lambda: Knative gives us a socket, and this is what is on it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Context } from 'aws-lambda';

export interface HttpRequest {
  /** Upper-case. */
  readonly method: string;
  /** The path as sent, without the query string; never decoded as a whole (segments are, by the router). */
  readonly path: string;
  /** The raw query string without `?` ('' when absent); parsed only by the routes that take parameters. */
  readonly rawQuery: string;
  /** node:http's lower-case headers. */
  readonly headers: IncomingHttpHeaders;
  /** The body bytes as received, already capped; undefined for bodyless requests. */
  readonly body: Buffer | undefined;
  /** The caller's well-formed X-Request-Id or one the edge generated; echoed on the response. */
  readonly requestId: string;
  /** The matched route template (`POST /data`), set by the router: logs and metrics never see raw paths. */
  route: string | undefined;
  /** Decoded path parameters of the matched route. */
  params: Readonly<Record<string, string>>;
  /**
   * Aborts when the client has gone (its connection closed before the answer was sent): work done for it alone
   * may stop, and a write not yet committed must not commit (lib/records/write-deadline.ts).
   */
  readonly signal: AbortSignal;
}

/**
 * A body written as it is produced (`Transfer-Encoding: chunked`, no Content-Length), each chunk only once the
 * socket took the one before it. The edge stops iterating when the client has gone; an iteration that throws ends
 * the response abnormally (the connection is destroyed, so the client sees a truncated body, never a clean end).
 */
export type StreamBody = AsyncIterable<string | Buffer>;

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  /** A string is sent as UTF-8. */
  body: string | Buffer | StreamBody;
}

/** Whether `body` is streamed rather than sent in one piece. */
export const isStreamBody = (body: HttpResponse['body']): body is StreamBody =>
  typeof body !== 'string' && !Buffer.isBuffer(body);

/**
 * middy's types require a Lambda `Context`; nothing here reads it (no early-timeout timer: the server's request
 * timeout bounds every request). One frozen object per process, never one per request.
 */
export type FunctionContext = Context;

/** A middy handler as the edge invokes it. */
export type HttpHandler = (request: HttpRequest, context: FunctionContext) => Promise<HttpResponse>;

/** The single value of a header (node:http joins most repeated headers; for the rest the first one wins). */
export function header(request: Pick<HttpRequest, 'headers'>, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Query parameters; a repeated one is joined with commas (so a list filter cannot be smuggled past validation). */
export function queryOf(request: Pick<HttpRequest, 'rawQuery'>): Record<string, string> {
  const parameters: Record<string, string> = {};
  if (request.rawQuery === '') return parameters;
  for (const [key, value] of new URLSearchParams(request.rawQuery)) {
    parameters[key] = Object.hasOwn(parameters, key) ? `${parameters[key]},${value}` : value;
  }
  return parameters;
}

export const JSON_CONTENT_TYPE = 'application/json';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** A JSON response with the given status and extra headers. */
export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return { statusCode, headers: { 'content-type': JSON_CONTENT_TYPE, ...headers }, body: JSON.stringify(body) };
}
