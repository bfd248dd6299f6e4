export { parseJsonBody, problemErrors, requestId, resolveRequestId } from './middlewares.ts';
export { API_METHODS, buildOpenApiDocument, joiToJsonSchema, recordInputJsonSchema } from './openapi.ts';
export { openApiRoute } from './openapi-route.ts';
export { PROBLEM_TYPE_BASE, problemCatalogue, problemResponse, problemType, statusOf, toAppError } from './problem.ts';
export { createResponseTier, type ReadyResponse, type ResponseTier } from './response-tier.ts';
export { createRouter, type Route, type RouteHandler } from './router.ts';
export * from './types.ts';
