import { createHash } from 'node:crypto';
import { API_ROUTES, bindRoutes, INGEST_BODY_FORMATS, staticJson } from '#lib/api';
import type { AccessGate } from '#lib/auth';
import { AppError } from '#lib/errors';
import {
  apiHandler,
  bodyFormatOf,
  type CorsOptions,
  createRouter,
  type HttpHandler,
  header,
  parseJson,
  parseNdjson,
} from '#lib/http';
import { currentTraceparent, type Logger } from '#lib/observability';
import { type IngestService, idempotencyKeySchema } from '#lib/records';

export interface IngestHandlerDeps {
  readonly ingest: IngestService;
  readonly logger: Logger;
  /** The OpenAPI document, or how to build it on first request. */
  readonly openApi: object | (() => object);
  readonly gate: AccessGate;
  /** CORS for these origins' pages; none by default. */
  readonly cors?: CorsOptions;
}

/** The ingest function's middy handler: `POST /data` (one record or a batch) and the OpenAPI document. */
export function createIngestHandler(deps: IngestHandlerDeps): HttpHandler {
  const { ingest, logger, openApi, gate } = deps;
  const router = createRouter(
    bindRoutes(
      'ingest',
      {
        ingestRecords: async (request, caller) => {
          // A JSON document (one record or a batch), or NDJSON: one record a line, a batch like any other.
          const body =
            bodyFormatOf(request, INGEST_BODY_FORMATS) === 'ndjson'
              ? { records: parseNdjson(request, (index) => `/records/${index}`) }
              : parseJson(request);
          const key = header(request, 'idempotency-key');
          if (key !== undefined && idempotencyKeySchema.validate(key).error !== undefined) {
            throw new AppError('invalid-header', 'Idempotency-Key must be 1–255 visible ASCII characters.', {
              issues: [{ pointer: '/headers/idempotency-key', detail: 'must be 1–255 visible ASCII characters' }],
            });
          }
          const traceContext = currentTraceparent();
          const result = await ingest.ingest({
            body,
            caller,
            // Only a keyed request needs the body's digest (same key, same body → replay).
            ...(key !== undefined && {
              idempotency: {
                key,
                fingerprint: createHash('sha256')
                  .update(request.body ?? '')
                  .digest('base64url'),
              },
            }),
            ...(traceContext !== undefined && { traceContext }),
            signal: request.signal,
          });
          const only = result.records.length === 1 ? result.records[0] : undefined;
          return {
            statusCode: 201,
            headers: { 'content-type': 'application/json', ...(only && { location: `/data/${only.id}` }) },
            body: JSON.stringify(result),
          };
        },
        openApi: staticJson(openApi),
      },
      gate,
    ),
    API_ROUTES,
  );

  return apiHandler(router, { logger, cors: deps.cors });
}
