export { apiReference } from './api-reference.ts';
export { API_REFERENCE_FILES } from './api-reference-files.ts';
export { buildRecordEventSchema, RECORD_EVENT_SCHEMA_FILE, recordEventSchemaText } from './event-schema.ts';
export { type JsonSchema, joiToJsonSchema } from './json-schema.ts';
export { buildOpenApiDocument } from './openapi.ts';
export {
  API_ROUTES,
  bindRoutes,
  type FunctionName,
  INGEST_BODY_FORMATS,
  type OperationId,
  publicTargetOf,
  type ResponseSpec,
  type RouteSpec,
  routesOf,
  staticJson,
} from './routes.ts';
