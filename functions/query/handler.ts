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
  requestId,
} from '#lib/http';
import type { Logger } from '#lib/observability';
import type { QueryService } from '#lib/records';

export interface QueryHandlerDeps {
  readonly query: QueryService;
  readonly logger: Logger;
  readonly openApi: object;
}

// Records are immutable, so a representation may be cached for as long as caches keep anything.
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The query function: `GET /data/{id}`, `GET /data?…` and the OpenAPI document. */
export function createQueryHandler({ query, logger, openApi }: QueryHandlerDeps): HttpHandler {
  const router = createRouter(
    [
      {
        method: 'GET',
        path: '/data/{id}',
        handler: async (event, params) => {
          const record = await query.getById(params.id ?? '');
          const body = JSON.stringify(record);
          const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
          const headers = { etag, 'cache-control': IMMUTABLE };
          if (matchesEtag(header(event, 'if-none-match'), etag)) return { statusCode: 304, headers, body: '' };
          return { statusCode: 200, headers: { 'content-type': 'application/json', ...headers }, body };
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

  return middy<HttpEvent, HttpResponse>().use(requestId()).use(problemErrors(logger)).handler(router);
}

/** RFC 9110 §13.1.2: weak comparison, a list of tags or `*`. */
function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
