/**
 * The single place where errors become HTTP: every `AppError` code has one status and one problem type, and
 * anything that is not an `AppError` is a 500 whose body says nothing about its cause.
 */
import Joi from 'joi';
import { AppError, type ErrorCode, type FieldIssue, isAppError } from '#lib/errors';
import { type HttpResponse, PROBLEM_CONTENT_TYPE } from './request.ts';

interface ProblemKind {
  readonly status: number;
  readonly title: string;
}

export const PROBLEM_TYPE_BASE = 'https://data-service.dev/problems/';

const KINDS: Readonly<Record<ErrorCode, ProblemKind>> = {
  'malformed-request': { status: 400, title: 'Bad request' },
  'request-timeout': { status: 408, title: 'Request timeout' },
  'headers-too-large': { status: 431, title: 'Request header fields too large' },
  'malformed-json': { status: 400, title: 'Malformed JSON' },
  'invalid-parameter': { status: 400, title: 'Invalid parameter' },
  'invalid-cursor': { status: 400, title: 'Invalid cursor' },
  'invalid-header': { status: 400, title: 'Invalid header' },
  'route-not-found': { status: 404, title: 'Not found' },
  'not-found': { status: 404, title: 'Record not found' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  forbidden: { status: 403, title: 'Forbidden' },
  'id-conflict': { status: 409, title: 'Id already used for other content' },
  'rate-limited': { status: 429, title: 'Too many requests' },
  // 404, not 410: the record is not served here, but a restore can bring it back (docs/storage.md).
  'record-archived': { status: 404, title: 'Record archived' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'idempotency-in-flight': { status: 409, title: 'Request with this Idempotency-Key in flight' },
  'payload-too-large': { status: 413, title: 'Payload too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'validation-failed': { status: 422, title: 'Validation failed' },
  // 422 like a timestamp the validator refuses: the request is well-formed and its content is what cannot be stored;
  // not 503, which a client would retry forever (no retry makes that day storable).
  'timestamp-not-stored': { status: 422, title: 'Timestamp outside the stored days' },
  'idempotency-key-reused': { status: 422, title: 'Idempotency-Key reused with another body' },
  overloaded: { status: 503, title: 'Overloaded' },
  'dependency-unavailable': { status: 503, title: 'Dependency unavailable' },
  timeout: { status: 503, title: 'Timed out' },
  internal: { status: 500, title: 'Internal server error' },
};

/** Stable problem `type` URI of an error code. */
export const problemType = (code: ErrorCode): string => `${PROBLEM_TYPE_BASE}${code}`;

/** The HTTP status an error code maps to. */
export const statusOf = (code: ErrorCode): number => KINDS[code].status;

/** Every code with its status and title, for the OpenAPI document and docs. */
export const problemCatalogue = (): ReadonlyArray<{ code: ErrorCode; status: number; title: string }> =>
  (Object.entries(KINDS) as Array<[ErrorCode, ProblemKind]>).map(([code, kind]) => ({ code, ...kind }));

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  request_id?: string;
  errors?: FieldIssue[];
}

/** Normalises anything thrown into an `AppError`; unknown errors become an opaque `internal`. */
export function toAppError(error: unknown): AppError {
  if (isAppError(error)) return error;
  if (error instanceof Error && error.name === 'TimeoutError') {
    return new AppError('timeout', 'The request took too long and was abandoned; retry later.', {
      cause: error,
      retryAfterSeconds: 1,
    });
  }
  return new AppError('internal', 'An unexpected error occurred. It has been logged.', { cause: error });
}

/** Renders an error as an RFC 9457 application/problem+json response. */
export function problemResponse(
  error: unknown,
  context: { readonly requestId?: string | undefined; readonly instance?: string | undefined } = {},
): HttpResponse & { body: string } {
  const appError = toAppError(error);
  const { status, title } = KINDS[appError.code];
  const body: ProblemBody = { type: problemType(appError.code), title, status, detail: appError.message };
  if (context.instance !== undefined) body.instance = context.instance;
  if (context.requestId !== undefined) body.request_id = context.requestId;
  if (appError.issues.length > 0) body.errors = [...appError.issues];
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' };
  if (appError.retryAfterSeconds !== undefined) headers['retry-after'] = String(appError.retryAfterSeconds);
  if (appError.allow !== undefined) headers.allow = appError.allow.join(', ');
  // RFC 6750 §3.1: a token without the needed grant is refused with the insufficient_scope challenge.
  if (appError.code === 'forbidden') headers['www-authenticate'] = 'Bearer error="insufficient_scope"';
  if (appError.headers !== undefined) Object.assign(headers, appError.headers);
  return { statusCode: status, headers, body: JSON.stringify(body) };
}

/** The problem body as a contract shape (OpenAPI `Problem`), declared beside the one function that renders it. */
export const problemSchema = Joi.object({
  type: Joi.string()
    .valid(...problemCatalogue().map((p) => problemType(p.code)))
    .required(),
  title: Joi.string().required(),
  status: Joi.number().integer().required(),
  detail: Joi.string().required(),
  instance: Joi.string(),
  request_id: Joi.string(),
  errors: Joi.array().items(
    Joi.object({
      pointer: Joi.string().allow('').required().description('RFC 6901 JSON pointer'),
      detail: Joi.string().required(),
    }),
  ),
}).id('Problem');
