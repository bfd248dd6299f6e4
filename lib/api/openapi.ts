/**
 * The OpenAPI 3.1 document of the whole public API, derived from the route table and the joi schemas; nothing
 * in it is written by hand but prose. Rules JSON Schema cannot express are stated in the schemas' descriptions.
 */
import type Joi from 'joi';
import { recordEventSchema } from '#lib/events';
import { MEDIA_TYPES, problemSchema } from '#lib/http';
import {
  ingestResultSchema,
  type RecordSchemaLimits,
  recordPageSchema,
  recordSchemas,
  storedRecordSchema,
} from '#lib/records';
import { type JsonSchema, joiToJsonSchema } from './json-schema.ts';
import { API_ROUTES, type RouteSpec } from './routes.ts';

const BEARER_SCHEME = 'bearerAuth';

/** Builds the document for the limits the service runs with (they appear in the schemas). */
export function buildOpenApiDocument(limits: RecordSchemaLimits): JsonSchema {
  const { recordInput, batchInput } = recordSchemas(limits);
  const components: Record<string, Joi.Schema> = {
    RecordInput: recordInput,
    BatchInput: batchInput,
    Record: storedRecordSchema,
    IngestResult: ingestResultSchema,
    RecordPage: recordPageSchema,
    RecordCreatedEvent: recordEventSchema,
    Problem: problemSchema,
  };
  const refs = new Set(Object.keys(components));
  const schema = (joi: Joi.Schema) => joiToJsonSchema(joi, refs);

  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of API_ROUTES as readonly RouteSpec[]) {
    const operation: JsonSchema = {
      operationId: route.operationId,
      summary: route.summary,
      'x-function': route.function,
      parameters: parametersOf(route, schema),
      responses: Object.fromEntries(
        Object.entries(route.responses).map(([status, response]) => {
          const body =
            response.schema === 'none'
              ? undefined
              : (response.schema ?? (Number(status) >= 400 ? problemSchema : undefined));
          const mediaType =
            response.mediaType ?? (Number(status) >= 400 ? 'application/problem+json' : 'application/json');
          return [
            status,
            {
              description: response.description,
              ...(response.headers && {
                headers: Object.fromEntries(
                  Object.entries(response.headers).map(([name, description]) => [
                    name,
                    { description, schema: { type: 'string' } },
                  ]),
                ),
              }),
              ...(body && { content: { [mediaType]: { schema: schema(body) } } }),
            },
          ];
        }),
      ),
    };
    if (route.access !== undefined) operation.security = [{ [BEARER_SCHEME]: [] }];
    if (route.body) {
      const formats = route.bodyFormats ?? ['json'];
      operation.requestBody = {
        required: true,
        description:
          'May be sent with Content-Encoding gzip, deflate, br or zstd; the size limit applies to the body as sent and as decoded.',
        content: {
          [MEDIA_TYPES.json]: { schema: schema(route.body(limits)) },
          ...(formats.includes('ndjson') && {
            [MEDIA_TYPES.ndjson]: {
              schema: {
                type: 'string',
                description: `One RecordInput a line (at most ${limits.maxBatchRecords} lines): a batch, answered as one; errors name line n as /records/<n-1>.`,
              },
            },
          }),
        },
      };
    }
    if ((operation.parameters as unknown[]).length === 0) delete operation.parameters;
    const item = paths[route.path] ?? {};
    item[route.method.toLowerCase()] = operation;
    paths[route.path] = item;
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'Data service',
      version: '1.0.0',
      description:
        'Accepts JSON records (POST /data), stores them durably in PostgreSQL and serves them back (GET /data). Every error is application/problem+json (RFC 9457). Each committed record is announced on Kafka as a CloudEvent (binary content mode, type dev.data-service.record.created.v1, id = the record id) whose data is a RecordCreatedEvent; see docs/events.md.',
    },
    paths,
    components: {
      securitySchemes: {
        [BEARER_SCHEME]: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A JWT of the configured issuer and audience (ES256/RS256). Its `scope` claim grants sources: `write:<pattern>` and `read:<pattern>`, where a pattern is a source name, a prefix ending in `*` (`sensor-*`), or `*` for every source. A record the token may not read answers 404, as if absent; a list without `source` needs `read:*`.',
        },
      },
      schemas: Object.fromEntries(Object.entries(components).map(([name, joi]) => [name, joiToJsonSchema(joi, refs)])),
    },
  };
}

function parametersOf(route: RouteSpec, schema: (joi: Joi.Schema) => JsonSchema): JsonSchema[] {
  const parameters: JsonSchema[] = [];
  for (const [name, joi] of Object.entries(route.pathParameters ?? {})) {
    parameters.push({ name, in: 'path', required: true, schema: schema(joi) });
  }
  if (route.query) {
    const converted = schema(route.query);
    for (const [name, property] of Object.entries((converted.properties ?? {}) as Record<string, JsonSchema>)) {
      const { description, ...rest } = property;
      parameters.push({
        name,
        in: 'query',
        required: false,
        ...(description !== undefined && { description }),
        schema: rest,
      });
    }
  }
  for (const [name, joi] of Object.entries(route.headers ?? {})) {
    const { description, ...rest } = schema(joi);
    parameters.push({
      name,
      in: 'header',
      required: false,
      ...(description !== undefined && { description }),
      schema: rest,
    });
  }
  return parameters;
}
