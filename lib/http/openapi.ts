/**
 * The OpenAPI 3.1 document of the whole public API. Record and batch schemas are generated from the joi schemas
 * that validate requests, so the two cannot drift; rules JSON Schema cannot express are stated in descriptions.
 */
import type Joi from 'joi';
import {
  batchInputSchema,
  DEFAULT_PAGE_LIMIT,
  MAX_PAGE_LIMIT,
  type RecordSchemaLimits,
  recordInputSchema,
} from '#lib/records';
import { problemCatalogue, problemType } from './problem.ts';

/** Methods of the public API per path; each function serves a subset and reports the rest in `Allow`. */
export const API_METHODS: Readonly<Record<string, readonly string[]>> = {
  '/data': ['GET', 'POST'],
  '/data/{id}': ['GET'],
  '/openapi.json': ['GET'],
};

type JsonSchema = { [key: string]: unknown };

interface Described {
  type?: string;
  flags?: { presence?: string; unknown?: boolean; label?: string };
  keys?: Record<string, Described>;
  items?: Described[];
  rules?: Array<{ name: string; args?: { limit?: number; regex?: string } }>;
}

/** Converts the subset of joi the record schemas use (objects, strings, arrays) to JSON Schema 2020-12. */
export function joiToJsonSchema(schema: Joi.Schema): JsonSchema {
  return convert(schema.describe() as Described);
}

function convert(d: Described): JsonSchema {
  const out: JsonSchema = {};
  const rule = (name: string) => d.rules?.find((r) => r.name === name)?.args;
  switch (d.type) {
    case 'object': {
      out.type = 'object';
      if (d.keys) {
        out.properties = Object.fromEntries(Object.entries(d.keys).map(([k, v]) => [k, convert(v)]));
        const required = Object.entries(d.keys)
          .filter(([, v]) => v.flags?.presence === 'required')
          .map(([k]) => k);
        if (required.length > 0) out.required = required;
      }
      out.additionalProperties = d.keys === undefined || d.flags?.unknown === true;
      break;
    }
    case 'string': {
      out.type = 'string';
      const min = rule('min')?.limit;
      const max = rule('max')?.limit;
      // joi's string() refuses '' unless allow('') is set, which JSON Schema says with minLength.
      out.minLength = min ?? 1;
      if (max !== undefined) out.maxLength = max;
      const regex = rule('pattern')?.regex;
      if (regex !== undefined) out.pattern = regex.slice(regex.indexOf('/') + 1, regex.lastIndexOf('/'));
      break;
    }
    case 'array': {
      out.type = 'array';
      const item = d.items?.[0];
      if (item) out.items = convert(item);
      const min = rule('min')?.limit;
      const max = rule('max')?.limit;
      if (min !== undefined) out.minItems = min;
      if (max !== undefined) out.maxItems = max;
      break;
    }
    default:
      throw new Error(`joiToJsonSchema: unsupported joi type ${String(d.type)}`);
  }
  return out;
}

/** The record input schema with the rules joi checks outside JSON Schema described. */
export function recordInputJsonSchema(limits: RecordSchemaLimits): JsonSchema {
  const schema = joiToJsonSchema(recordInputSchema);
  const props = schema.properties as Record<string, JsonSchema>;
  Object.assign(props.id ?? {}, {
    format: 'uuid',
    description: 'Optional. A client-supplied id makes retries idempotent: a stored id answers `duplicate`.',
  });
  Object.assign(props.source ?? {}, { description: 'Producer of the record.' });
  Object.assign(props.type ?? {}, { description: 'Kind of record.' });
  Object.assign(props.timestamp ?? {}, {
    format: 'date-time',
    description: `RFC 3339 with an offset; defaults to the receipt time. At most ${limits.maxPastMs / 86_400_000} days in the past and ${limits.maxFutureMs / 3_600_000} hours in the future.`,
  });
  Object.assign(props.payload ?? {}, {
    description: `Any JSON object up to ${limits.payloadMaxBytes} bytes and ${limits.payloadMaxDepth} levels deep. No NUL characters, unpaired surrogates, or the keys __proto__, constructor, prototype.`,
  });
  return schema;
}

/** Builds the OpenAPI 3.1 document for the given limits. */
export function buildOpenApiDocument(limits: RecordSchemaLimits): JsonSchema {
  const batch = joiToJsonSchema(batchInputSchema(limits.maxBatchRecords));
  (batch.properties as Record<string, JsonSchema>).records = {
    ...((batch.properties as Record<string, JsonSchema>).records ?? {}),
    items: { $ref: '#/components/schemas/RecordInput' },
  };
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  });
  const json = (schema: JsonSchema, description: string, headers?: JsonSchema) => ({
    description,
    ...(headers && { headers }),
    content: { 'application/json': { schema } },
  });
  const stringParam = (name: string, description: string, schema: JsonSchema = { type: 'string' }) => ({
    name,
    in: 'query',
    required: false,
    description,
    schema,
  });
  return {
    openapi: '3.1.0',
    info: {
      title: 'Data service',
      version: '1.0.0',
      description:
        'Accepts JSON records (POST /data), stores them durably in PostgreSQL and serves them back (GET /data). Every error is application/problem+json (RFC 9457).',
    },
    paths: {
      '/data': {
        post: {
          operationId: 'ingestRecords',
          summary: 'Store one record or a batch, atomically',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description:
                'Same key and same body → the first response again; same key and another body → 422; while the first is in flight → 409.',
              schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7E]+$' },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  oneOf: [{ $ref: '#/components/schemas/RecordInput' }, { $ref: '#/components/schemas/BatchInput' }],
                },
              },
            },
          },
          responses: {
            '201': json({ $ref: '#/components/schemas/IngestResult' }, 'Every record is committed.'),
            '400': problem('Malformed JSON or an invalid header.'),
            '409': problem('A request with the same Idempotency-Key is in flight.'),
            '413': problem('The body is larger than the limit.'),
            '415': problem('The body is not application/json.'),
            '422': problem('Validation failed (errors lists every field) or Idempotency-Key reused.'),
            '503': problem('Overloaded or a dependency is down; see Retry-After.'),
          },
        },
        get: {
          operationId: 'listRecords',
          summary: 'List records newest first with keyset pagination',
          parameters: [
            stringParam('source', 'Only records of this source.', { type: 'string', minLength: 1, maxLength: 128 }),
            stringParam('type', 'Only records of this type.', { type: 'string', minLength: 1, maxLength: 128 }),
            stringParam('from', 'Inclusive lower bound on timestamp (RFC 3339).', {
              type: 'string',
              format: 'date-time',
            }),
            stringParam('to', 'Exclusive upper bound on timestamp (RFC 3339).', {
              type: 'string',
              format: 'date-time',
            }),
            stringParam('limit', `Page size, default ${DEFAULT_PAGE_LIMIT}.`, {
              type: 'integer',
              minimum: 1,
              maximum: MAX_PAGE_LIMIT,
              default: DEFAULT_PAGE_LIMIT,
            }),
            stringParam('cursor', 'The next_cursor of the previous page, with the same filters.'),
          ],
          responses: {
            '200': json({ $ref: '#/components/schemas/RecordPage' }, 'One page.', {
              Link: {
                description: 'rel="next" URL of the following page, absent on the last page.',
                schema: { type: 'string' },
              },
            }),
            '400': problem('A bad query parameter or cursor.'),
            '503': problem('A dependency is down; see Retry-After.'),
          },
        },
      },
      '/data/{id}': {
        get: {
          operationId: 'getRecord',
          summary: 'One record by id',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } },
            { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } },
          ],
          responses: {
            '200': json({ $ref: '#/components/schemas/Record' }, 'The record; immutable, so cacheable for a year.', {
              ETag: { schema: { type: 'string' } },
              'Cache-Control': { schema: { type: 'string' } },
            }),
            '304': { description: 'The ETag in If-None-Match still matches.' },
            '400': problem('The id is not a UUID.'),
            '404': problem('No record has this id.'),
            '503': problem('A dependency is down; see Retry-After.'),
          },
        },
      },
      '/openapi.json': {
        get: { operationId: 'openApi', summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' } } },
      },
      '/healthz': {
        get: { operationId: 'health', summary: 'The process is alive', responses: { '200': { description: 'Alive' } } },
      },
      '/readyz': {
        get: {
          operationId: 'ready',
          summary: 'Ready to serve (false while draining or without PostgreSQL)',
          responses: { '200': { description: 'Ready' }, '503': { description: 'Not ready' } },
        },
      },
    },
    components: {
      schemas: {
        RecordInput: recordInputJsonSchema(limits),
        BatchInput: batch,
        Record: {
          type: 'object',
          required: ['id', 'source', 'type', 'timestamp', 'payload', 'received_at'],
          additionalProperties: false,
          properties: {
            id: { type: 'string', format: 'uuid' },
            source: { type: 'string' },
            type: { type: 'string' },
            timestamp: {
              type: 'string',
              format: 'date-time',
              description: 'UTC, millisecond or microsecond precision.',
            },
            payload: { type: 'object' },
            received_at: { type: 'string', format: 'date-time' },
          },
        },
        IngestResult: {
          type: 'object',
          required: ['records'],
          properties: {
            records: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'status'],
                properties: { id: { type: 'string', format: 'uuid' }, status: { enum: ['created', 'duplicate'] } },
              },
            },
          },
        },
        RecordPage: {
          type: 'object',
          required: ['records', 'next_cursor'],
          properties: {
            records: { type: 'array', items: { $ref: '#/components/schemas/Record' } },
            next_cursor: { type: ['string', 'null'] },
          },
        },
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail'],
          properties: {
            type: { type: 'string', enum: problemCatalogue().map((p) => problemType(p.code)) },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            instance: { type: 'string' },
            request_id: { type: 'string' },
            errors: {
              type: 'array',
              items: {
                type: 'object',
                required: ['pointer', 'detail'],
                properties: {
                  pointer: { type: 'string', description: 'RFC 6901 JSON pointer' },
                  detail: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
  };
}
