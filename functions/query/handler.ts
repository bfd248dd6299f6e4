import { createHash } from 'node:crypto';
import middy from '@middy/core';
import {
  API_METHODS,
  createRouter,
  type HttpEvent,
  type HttpHandler,
  type HttpResponse,
  header,
  openApiRoute,
  problemErrors,
  type ResponseTier,
  requestId,
} from '#lib/http';
import type { Logger } from '#lib/observability';
import type { QueryService } from '#lib/records';

export interface QueryHandlerDeps {
  readonly query: QueryService;
  readonly logger: Logger;
  readonly openApi: object;
  /** In-process tier of ready responses for GET /data/{id} (records are immutable; positive answers only). */
  readonly ready?: ResponseTier;
}

// Records are immutable, so a representation may be cached for as long as caches keep anything.
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The query function: `GET /data/{id}`, `GET /data?…` and the OpenAPI document. */
export function createQueryHandler({ query, logger, openApi, ready }: QueryHandlerDeps): HttpHandler {
  const router = createRouter(
    [
      {
        method: 'GET',
        path: '/data/{id}',
        handler: async (event, params) => {
          const id = (params.id ?? '').toLowerCase();
          let response = ready?.get(id);
          if (response === undefined) {
            const body = JSON.stringify(await query.getById(id));
            response = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
            ready?.set(id, response);
          }
          const headers = { etag: response.etag, 'cache-control': IMMUTABLE };
          if (matchesEtag(header(event, 'if-none-match'), response.etag)) return { statusCode: 304, headers, body: '' };
          return { statusCode: 200, headers: { 'content-type': 'application/json', ...headers }, body: response.body };
        },
      },
      {
        method: 'GET',
        path: '/data',
        handler: async (event) => {
          const page = await query.list(event.queryStringParameters ?? {});
          const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-cache' };
          if (page.nextCursor !== null) {
            const next = new URLSearchParams(event.rawQueryString);
            next.set('cursor', page.nextCursor);
            headers.link = `</data?${next.toString()}>; rel="next"`;
          }
          return {
            statusCode: 200,
            headers,
            body: JSON.stringify({ records: page.records, next_cursor: page.nextCursor }),
          };
        },
      },
      { method: 'GET', path: '/openapi.json', handler: openApiRoute(openApi) },
    ],
    API_METHODS,
  );

  // No early-timeout timer per request: the runtime's request timeout already bounds every request.
  return middy<HttpEvent, HttpResponse>({ timeoutEarlyInMillis: 0 })
    .use(requestId())
    .use(problemErrors(logger))
    .handler(router);
}

/** RFC 9110 §13.1.2: weak comparison, a list of tags or `*`. */
function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
