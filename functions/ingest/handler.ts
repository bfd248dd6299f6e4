import { createHash } from 'node:crypto';
import middy from '@middy/core';
import { AppError } from '#lib/errors';
import {
  API_METHODS,
  createRouter,
  type HttpEvent,
  type HttpHandler,
  type HttpResponse,
  header,
  jsonResponse,
  openApiRoute,
  parseJsonBody,
  problemErrors,
  requestId,
} from '#lib/http';
import { currentTraceparent, type Logger } from '#lib/observability';
import type { IngestService } from '#lib/records';

export interface IngestHandlerDeps {
  readonly ingest: IngestService;
  readonly logger: Logger;
  readonly openApi: object;
  readonly bodyLimitBytes: number;
}

// Visible ASCII, as Stripe and the IETF httpapi draft use; long enough for a UUID or a content hash.
const IDEMPOTENCY_KEY = /^[\x21-\x7E]{1,255}$/;

/** The ingest function: `POST /data` (one record or a batch) and the OpenAPI document. */
export function createIngestHandler({ ingest, logger, openApi, bodyLimitBytes }: IngestHandlerDeps): HttpHandler {
  const router = createRouter(
    [
      {
        method: 'POST',
        path: '/data',
        handler: async (event) => {
          const body = parseJsonBody(event, bodyLimitBytes);
          const key = header(event, 'idempotency-key');
          if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
            throw new AppError('invalid-header', 'Idempotency-Key must be 1–255 visible ASCII characters.', {
              issues: [{ pointer: '/headers/idempotency-key', detail: 'must be 1–255 visible ASCII characters' }],
            });
          }
          const fingerprint = createHash('sha256').update(body.raw).digest('base64url');
          const traceContext = currentTraceparent();
          const result = await ingest.ingest({
            body: body.value,
            ...(key !== undefined && { idempotency: { key, fingerprint } }),
            ...(traceContext !== undefined && { traceContext }),
          });
          const only = result.records.length === 1 ? result.records[0] : undefined;
          return jsonResponse(201, result, only ? { location: `/data/${only.id}` } : {});
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
