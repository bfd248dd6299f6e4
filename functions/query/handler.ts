import { API_ROUTES, apiReference, bindRoutes, staticJson } from '#lib/api';
import type { AccessGate } from '#lib/auth';
import { apiHandler, type CorsOptions, createRouter, type HttpHandler, header, MEDIA_TYPES, queryOf } from '#lib/http';
import type { Logger } from '#lib/observability';
import type { QueryService } from '#lib/records';

export interface QueryHandlerDeps {
  readonly query: QueryService;
  readonly logger: Logger;
  /** The OpenAPI document, or how to build it on first request. */
  readonly openApi: object | (() => object);
  readonly gate: AccessGate;
  /** CORS for these origins' pages; none by default. */
  readonly cors?: CorsOptions;
}

// Records are immutable, so a representation may be cached for as long as caches keep anything; while callers
// are told apart, only by the caller's own cache (a shared one would hand it to callers who may not read it).
const IMMUTABLE = 'public, max-age=31536000, immutable';
const PRIVATE_IMMUTABLE = 'private, max-age=31536000, immutable';

/**
 * The query function's middy handler: `GET /data/{id}`, `GET /data?…`, `GET /data/export?…` (streamed NDJSON), the
 * OpenAPI document and its page.
 */
export function createQueryHandler(deps: QueryHandlerDeps): HttpHandler {
  const { query, logger, openApi, gate } = deps;
  const personal = gate.authenticates ? { vary: 'Authorization' } : {};
  const recordCaching = { 'cache-control': gate.authenticates ? PRIVATE_IMMUTABLE : IMMUTABLE, ...personal };
  const pageCaching = { 'cache-control': gate.authenticates ? 'private, no-cache' : 'no-cache', ...personal };
  const reference = apiReference();
  const router = createRouter(
    bindRoutes(
      'query',
      {
        getRecord: async (request, caller) => {
          const document = await query.getById(request.params.id ?? '', caller);
          const headers = { etag: document.etag, ...recordCaching };
          if (matchesEtag(header(request, 'if-none-match'), document.etag))
            return { statusCode: 304, headers, body: '' };
          return { statusCode: 200, headers: { 'content-type': 'application/json', ...headers }, body: document.json };
        },
        listRecords: async (request, caller) => {
          const page = await query.list(queryOf(request), caller);
          const headers: Record<string, string> = {
            'content-type': 'application/json',
            ...pageCaching,
            'data-staleness': formatStaleness(page.stalenessSeconds),
          };
          if (page.nextCursor !== null) {
            const next = new URLSearchParams(request.rawQuery);
            next.set('cursor', page.nextCursor);
            headers.link = `</data?${next.toString()}>; rel="next"`;
          }
          return { statusCode: 200, headers, body: page.json };
        },
        // Streamed as it is read, never cached: a page of its own is what GET /data is for.
        exportRecords: async (request, caller) => {
          const lines = await query.exportRecords(queryOf(request), caller, request.signal);
          return {
            statusCode: 200,
            headers: {
              'content-type': MEDIA_TYPES.ndjson,
              'cache-control': 'no-store',
              'data-staleness': formatStaleness(lines.stalenessSeconds),
            },
            body: lines,
          };
        },
        openApi: staticJson(openApi),
        apiReference: reference.page,
        apiReferenceAsset: reference.asset,
      },
      gate,
    ),
    API_ROUTES,
  );

  return apiHandler(router, { logger, cors: deps.cors });
}

/**
 * The `Data-Staleness` value: an upper bound in seconds, rounded up to the millisecond so it never understates
 * (`0`, `0.734`, `12.5`), or `unknown` when no bound is known (docs/api.md).
 */
export function formatStaleness(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return 'unknown';
  // The epsilon keeps binary fractions (0.1 * 1000 = 100.00000000000001) from gaining a millisecond.
  return String(Math.ceil(Math.max(0, seconds) * 1000 - 1e-9) / 1000);
}

/** RFC 9110 §13.1.2: weak comparison, a list of tags or `*`. */
function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
