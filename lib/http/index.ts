export { responseCodingOf } from './accept-encoding.ts';
export { type BodyFormat, bodyFormatOf, jsonBody, MEDIA_TYPES, parseJson, parseNdjson } from './body.ts';
export { type CorsOptions, cors, NO_CORS } from './cors.ts';
export { apiHandler, problemErrors } from './middlewares.ts';
export {
  PROBLEM_TYPE_BASE,
  problemCatalogue,
  problemResponse,
  problemSchema,
  problemType,
  statusOf,
  toAppError,
} from './problem.ts';
export * from './request.ts';
export { requestIdOf } from './request-id.ts';
export {
  type BoundRoute,
  compilePath,
  createRouter,
  type Method,
  type RouteDefinition,
  type RouteHandler,
} from './router.ts';
