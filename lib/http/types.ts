import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';

/**
 * Requests use the API Gateway HTTP API v2 event shape, so @middy/http-* middlewares work unchanged and the
 * handlers could also run on AWS Lambda; `lib/runtime` builds these events from node:http.
 */
export type HttpEvent = APIGatewayProxyEventV2;

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded?: boolean;
}

export type HttpContext = Context;

/** A middy-compatible HTTP handler as `lib/runtime` invokes it. */
export type HttpHandler = (event: HttpEvent, context: HttpContext) => Promise<HttpResponse>;

/** Lower-case header lookup: node:http and API Gateway both deliver lower-case names, tests may not. */
export function header(event: Pick<HttpEvent, 'headers'>, name: string): string | undefined {
  const headers = event.headers ?? {};
  const exact = headers[name];
  if (exact !== undefined) return exact;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === wanted) return value;
  return undefined;
}

export const JSON_CONTENT_TYPE = 'application/json';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** A JSON response with the given status and extra headers. */
export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return { statusCode, headers: { 'content-type': JSON_CONTENT_TYPE, ...headers }, body: JSON.stringify(body) };
}
