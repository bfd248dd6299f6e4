/**
 * The public API, declared once: every route with its method, path, the function that serves it on the public
 * host, and the joi schemas of what it takes and answers. The routers, 404/405 + `Allow`, the OpenAPI document,
 * the `npm start` gateway and the check of the Knative public routing are all derived from this table.
 */
import Joi from 'joi';
import type { AccessGate } from '#lib/auth';
import {
  type BodyFormat,
  type BoundRoute,
  compilePath,
  type HttpRequest,
  type HttpResponse,
  header,
  MEDIA_TYPES,
  type Method,
  type RouteDefinition,
  type RouteHandler,
} from '#lib/http';
import {
  type Caller,
  exportQuerySchema,
  idempotencyKeySchema,
  ingestResultSchema,
  listQuerySchema,
  type RecordSchemaLimits,
  recordPageSchema,
  recordSchemas,
  storedRecordSchema,
} from '#lib/records';

export type FunctionName = 'ingest' | 'query';

export interface ResponseSpec {
  readonly description: string;
  /** Defaults to the Problem schema for 4xx/5xx; none for a bodyless answer. */
  readonly schema?: Joi.Schema | 'none';
  /** Defaults to application/json (application/problem+json for 4xx/5xx); NDJSON carries `schema` a line. */
  readonly mediaType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RouteSpec extends RouteDefinition {
  readonly operationId: string;
  /** The function the public host sends this route to (knative/cluster/public-routing.yaml). */
  readonly function: FunctionName;
  /** Whether the other function serves it too on its own address (the OpenAPI document is served by both). */
  readonly servedByBoth?: boolean;
  /**
   * Which grant of the caller's token the route needs (lib/auth): its handler runs only after the access gate
   * admitted the request, and is given the caller. Routes without it are open (the OpenAPI document).
   */
  readonly access?: 'write' | 'read';
  readonly summary: string;
  readonly query?: Joi.ObjectSchema;
  readonly pathParameters?: Readonly<Record<string, Joi.Schema>>;
  readonly headers?: Readonly<Record<string, Joi.Schema>>;
  /** The JSON body, as a schema of the limits the service runs with. */
  readonly body?: (limits: RecordSchemaLimits) => Joi.Schema;
  /** How the body may be written (default JSON only); NDJSON carries one element of `records` a line. */
  readonly bodyFormats?: readonly BodyFormat[];
  readonly responses: Readonly<Record<number, ResponseSpec>>;
}

/** A POST /data body: one record or `{records}` as JSON, or the records as NDJSON. */
export const INGEST_BODY_FORMATS: readonly BodyFormat[] = ['json', 'ndjson'];

const idParameter = Joi.string()
  .pattern(/^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/)
  .meta({ format: 'uuid' });
const UNAVAILABLE: ResponseSpec = { description: 'Overloaded or a dependency is down; see Retry-After.' };
// The answers of the access gate, on every route that has one.
const UNAUTHORIZED: ResponseSpec = {
  description: 'No valid bearer token.',
  headers: { 'WWW-Authenticate': 'Bearer challenge with the RFC 6750 error code.' },
};
const RATE_LIMITED: ResponseSpec = {
  description: 'This caller sent too many requests; see Retry-After.',
  headers: {
    'Retry-After': 'Seconds to wait.',
    RateLimit: 'Remaining quota and seconds to reset (IETF RateLimit fields).',
    'RateLimit-Policy': 'The quota per window.',
  },
};

// On every list page and export (docs/api.md, "How stale a list may be").
const DATA_STALENESS = {
  'Data-Staleness':
    "Upper bound, in seconds (up to three decimals, rounded up), of how far the records may trail the primary database when answered: 0 when read from it, the read replica's lag bound when read from a replica, `unknown` when no bound is known. For an export, the bound when its first chunk was read.",
};

export const API_ROUTES = [
  {
    operationId: 'ingestRecords',
    function: 'ingest',
    method: 'POST',
    path: '/data',
    access: 'write',
    summary: 'Store one record or a batch, atomically',
    headers: { 'Idempotency-Key': idempotencyKeySchema },
    bodyFormats: INGEST_BODY_FORMATS,
    body: (limits) => {
      const { recordInput, batchInput } = recordSchemas(limits);
      return Joi.alternatives().try(recordInput, batchInput);
    },
    responses: {
      201: {
        description: 'Every record is committed.',
        schema: ingestResultSchema,
        headers: { Location: 'The record, for a single-record body.' },
      },
      400: { description: 'Malformed JSON or an invalid header.' },
      401: UNAUTHORIZED,
      403: { description: "A record's source is not writable with this token (errors names /records/<i>/source)." },
      409: {
        description: 'A request with the same Idempotency-Key is in flight, or a known id came with other content.',
      },
      413: { description: 'The body is larger than the limit, as sent or once decoded.' },
      415: {
        description:
          'The body is neither application/json nor application/x-ndjson, or its Content-Encoding is not one of gzip, deflate, br, zstd.',
      },
      422: {
        description:
          "Validation failed (errors lists every field), Idempotency-Key reused, or a timestamp whose day the database does not store (timestamp-not-stored: outside the window by the database's clock; errors names /records/<i>/timestamp; do not retry).",
      },
      429: RATE_LIMITED,
      503: UNAVAILABLE,
    },
  },
  {
    operationId: 'listRecords',
    function: 'query',
    method: 'GET',
    path: '/data',
    access: 'read',
    summary: 'List records newest first with keyset pagination',
    query: listQuerySchema,
    responses: {
      200: {
        description: 'One page.',
        schema: recordPageSchema,
        headers: { Link: 'rel="next" URL of the following page, absent on the last page.', ...DATA_STALENESS },
      },
      400: { description: 'A bad query parameter or cursor.' },
      401: UNAUTHORIZED,
      403: { description: 'The source is not readable with this token, or no source was named without read:*.' },
      429: RATE_LIMITED,
      503: UNAVAILABLE,
    },
  },
  {
    // Before GET /data/{id}: the router takes the first template that matches, and `export` is no record id.
    operationId: 'exportRecords',
    function: 'query',
    method: 'GET',
    path: '/data/export',
    access: 'read',
    summary: 'Every record of a source and time range, streamed as NDJSON newest first; resumable with `after`',
    query: exportQuerySchema,
    responses: {
      200: {
        description:
          'One Record a line, newest first on (timestamp, id), streamed (chunked, compressed when Accept-Encoding allows) for as long as it takes. A body that ends without its final chunk was cut: resume with `after=<timestamp>,<id>` of the last complete line. Not cached (Cache-Control: no-store).',
        schema: storedRecordSchema,
        mediaType: MEDIA_TYPES.ndjson,
        headers: DATA_STALENESS,
      },
      400: { description: 'A bad query parameter.' },
      401: UNAUTHORIZED,
      403: { description: 'The source is not readable with this token, or no source was named without read:*.' },
      429: RATE_LIMITED,
      503: UNAVAILABLE,
    },
  },
  {
    operationId: 'getRecord',
    function: 'query',
    method: 'GET',
    path: '/data/{id}',
    access: 'read',
    summary: 'One record by id',
    pathParameters: { id: idParameter },
    headers: { 'If-None-Match': Joi.string() },
    responses: {
      200: {
        description: 'The record; immutable, so cacheable for a year (privately, by its caller, while auth is on).',
        schema: storedRecordSchema,
        headers: { ETag: 'Strong validator of the representation.', 'Cache-Control': 'Caching policy.' },
      },
      304: { description: 'The ETag in If-None-Match still matches.', schema: 'none' },
      400: { description: 'The id is not a UUID.' },
      401: UNAUTHORIZED,
      404: { description: 'No record has this id that this token may read.' },
      429: RATE_LIMITED,
      503: UNAVAILABLE,
    },
  },
  {
    operationId: 'openApi',
    function: 'query',
    servedByBoth: true,
    method: 'GET',
    path: '/openapi.json',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', schema: 'none' } },
  },
  {
    operationId: 'apiReference',
    function: 'query',
    method: 'GET',
    path: '/docs',
    summary: 'This document as a page (Swagger UI, served by the function itself)',
    responses: { 200: { description: 'An HTML page that renders /openapi.json.', schema: 'none' } },
  },
  {
    operationId: 'apiReferenceAsset',
    function: 'query',
    method: 'GET',
    path: '/docs/{asset}',
    summary: 'A script or style sheet of the API page',
    pathParameters: { asset: Joi.string().max(64) },
    responses: {
      200: { description: 'The file, compressed when the client accepts it.', schema: 'none' },
      304: { description: 'The ETag in If-None-Match still matches.', schema: 'none' },
      404: { description: 'No such file.' },
    },
  },
] as const satisfies readonly RouteSpec[];

type RoutesOf<F extends FunctionName> = Extract<(typeof API_ROUTES)[number], { function: F } | { servedByBoth: true }>;
export type OperationId<F extends FunctionName> = RoutesOf<F>['operationId'];

/** The handler of a route behind the access gate: it is given the admitted caller. */
export type GuardedHandler = (request: HttpRequest, caller: Caller) => Promise<HttpResponse>;
/** One handler per route a function serves; routes with `access` take a `GuardedHandler`. */
export type HandlersOf<F extends FunctionName> = {
  readonly [K in OperationId<F>]: Extract<RoutesOf<F>, { operationId: K }> extends { access: string }
    ? GuardedHandler
    : RouteHandler;
};

/** The routes a function serves on its own address. */
export const routesOf = (name: FunctionName): readonly RouteSpec[] =>
  API_ROUTES.filter((route: RouteSpec) => route.function === name || route.servedByBoth === true);

// Compiled once, with the router's own template syntax: the gateway asks on every request.
const COMPILED = (API_ROUTES as readonly RouteSpec[]).map((route) => ({
  route,
  pattern: compilePath(route.path).pattern,
}));

/** The function the public host sends a request to; unknown paths go to query, which answers their 404. */
export function publicTargetOf(method: string, path: string): FunctionName {
  const wanted = method === 'HEAD' ? 'GET' : method;
  const onPath = COMPILED.filter(({ pattern }) => pattern.test(path)).map(({ route }) => route);
  const exact = onPath.find((route) => route.method === wanted);
  return (exact ?? onPath[0])?.function ?? 'query';
}

export type { Method };

/**
 * Binds a function's handlers to its routes, each route with `access` behind `gate`; the type demands one
 * handler for every route the function serves.
 */
export function bindRoutes<F extends FunctionName>(name: F, handlers: HandlersOf<F>, gate: AccessGate): BoundRoute[] {
  return routesOf(name).map((route) => {
    const handler = (handlers as unknown as Readonly<Record<string, RouteHandler | GuardedHandler>>)[route.operationId];
    if (handler === undefined) throw new Error(`no handler for ${route.operationId} in ${name}`);
    if (route.access === undefined) return { method: route.method, path: route.path, handler: handler as RouteHandler };
    const guarded = handler as GuardedHandler;
    return {
      method: route.method,
      path: route.path,
      handler: async (request) => {
        const { caller, headers } = await gate.admit(header(request, 'authorization'));
        const response = await guarded(request, caller);
        Object.assign(response.headers, headers);
        return response;
      },
    };
  });
}

/** Serves a document prepared once (the OpenAPI document): the same bytes for every request. */
export function staticJson(document: unknown, cacheControl = 'public, max-age=300'): RouteHandler {
  // A function is built on the first request: the OpenAPI document walks every joi schema, which took a third of
  // a function's start (node --cpu-prof of dist/query.mjs), and Knative starts pods on the request path.
  let body: Buffer | undefined;
  return async () => {
    body ??= Buffer.from(JSON.stringify(typeof document === 'function' ? document() : document));
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json', 'cache-control': cacheControl },
      body,
    };
  };
}
