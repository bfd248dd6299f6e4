import type { RouteHandler } from './router.ts';

/** Serves a prebuilt OpenAPI document; both functions expose it at /openapi.json. */
export function openApiRoute(document: object): RouteHandler {
  const body = JSON.stringify(document);
  return async () => ({
    statusCode: 200,
    headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' },
    body,
  });
}
