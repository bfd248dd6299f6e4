/**
 * CORS for the configured origins (Fetch standard §3.2), on every answer a handler gives, errors included, so a
 * page on another origin can read a 401 or 429 as well as a 201. A preflight (OPTIONS with
 * Access-Control-Request-Method) is answered by the router with `Allow`; this adds what the browser checks.
 * Not @middy/http-cors: it reads the API Gateway event shape (`httpMethod`, `version`), writes capitalised header
 * names beside our lower-case ones (two `Vary` headers), and grants whatever a preflight asks.
 */
import type { MiddlewareObj } from '@middy/core';
import type { FunctionContext, HttpRequest, HttpResponse } from './request.ts';
import { header } from './request.ts';

export interface CorsOptions {
  /** Exact origins (`https://app.example.com`), or `*` for any. Empty: no CORS headers at all. */
  readonly allowedOrigins: readonly string[];
  readonly maxAgeSeconds: number;
}

/** What a page may send: the API's own request headers (a preflight asking for others is not granted them). */
const REQUEST_HEADERS = [
  'authorization',
  'content-type',
  'content-encoding',
  'idempotency-key',
  'if-none-match',
  'x-request-id',
  'traceparent',
  'tracestate',
];
/** What a page may read beyond the CORS-safelisted response headers. */
const EXPOSED_HEADERS = [
  'location',
  'etag',
  'link',
  'data-staleness',
  'x-request-id',
  'retry-after',
  'ratelimit',
  'ratelimit-policy',
  'www-authenticate',
].join(', ');

/** No origin: no CORS headers, and no work per request. */
export const NO_CORS: CorsOptions = { allowedOrigins: [], maxAgeSeconds: 0 };

export function cors({
  allowedOrigins,
  maxAgeSeconds,
}: CorsOptions): Array<MiddlewareObj<HttpRequest, HttpResponse, Error, FunctionContext>> {
  // middy takes a list of middlewares: none at all when no origin is allowed.
  if (allowedOrigins.length === 0) return [];
  const any = allowedOrigins.includes('*');
  const origins = new Set(allowedOrigins);
  const decorate = (event: HttpRequest, response: HttpResponse | undefined | null) => {
    if (response === undefined || response === null) return;
    const origin = header(event, 'origin');
    // The answer depends on the Origin whenever some origins are refused: shared caches must key on it.
    if (!any) response.headers.vary = response.headers.vary ? `${response.headers.vary}, Origin` : 'Origin';
    if (origin === undefined || (!any && !origins.has(origin))) return;
    response.headers['access-control-allow-origin'] = any ? '*' : origin;
    const requestedMethod = header(event, 'access-control-request-method');
    if (event.method === 'OPTIONS' && requestedMethod !== undefined) {
      const allow = response.headers.allow;
      if (allow !== undefined) response.headers['access-control-allow-methods'] = allow;
      response.headers['access-control-allow-headers'] = REQUEST_HEADERS.join(', ');
      response.headers['access-control-max-age'] = String(maxAgeSeconds);
    } else {
      response.headers['access-control-expose-headers'] = EXPOSED_HEADERS;
    }
  };
  return [
    {
      after: (request) => decorate(request.event, request.response),
      onError: (request) => decorate(request.event, request.response),
    },
  ];
}
