import type { MiddlewareObj } from '@middy/core';
import { AppError } from '#lib/errors';
import type { Logger } from '#lib/observability';
import { problemResponse, toAppError } from './problem.ts';
import { type HttpEvent, type HttpResponse, header } from './types.ts';

type HttpMiddleware = MiddlewareObj<HttpEvent, HttpResponse>;

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `X-Request-Id` when it is well-formed (safe to log and echo), otherwise `fallback`. */
export const resolveRequestId = (given: string | undefined, fallback: string | (() => string)): string =>
  given !== undefined && REQUEST_ID_PATTERN.test(given) ? given : typeof fallback === 'string' ? fallback : fallback();

/**
 * Honours a well-formed `X-Request-Id` from the caller (or the ingress), otherwise keeps the runtime's own id,
 * and echoes it on every response, errors included.
 */
export function requestId(): HttpMiddleware {
  const echo = (request: { event: HttpEvent; response: HttpResponse | null | undefined }) => {
    if (request.response) request.response.headers['x-request-id'] = request.event.requestContext.requestId;
  };
  return {
    before: (request) => {
      const { requestContext } = request.event;
      requestContext.requestId = resolveRequestId(header(request.event, 'x-request-id'), requestContext.requestId);
    },
    after: echo,
    onError: echo,
  };
}

/** Maps every error to problem+json in one place; logs 5xx with their cause, never sends it. */
export function problemErrors(logger: Logger): HttpMiddleware {
  return {
    onError: (request) => {
      const error = toAppError(request.error);
      const { requestId } = request.event.requestContext;
      const response = problemResponse(error, { requestId, instance: request.event.rawPath });
      const log = { request_id: requestId, code: error.code, status: response.statusCode, err: error.cause ?? error };
      if (response.statusCode >= 500) logger.error(log, error.message);
      else logger.debug(log, error.message);
      response.headers['x-request-id'] = requestId;
      request.response = response;
    },
  };
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;

/**
 * Parses the JSON body of a matched route: 415 unless the media type is JSON (UTF-8), 400 for an empty or
 * malformed body, 413 past `limitBytes` (the runtime enforces the cap while streaming; this guards other hosts
 * such as Lambda). Called by the route, not as a middleware, so that an unknown route or method answers 404/405
 * whatever its body.
 */
export function parseJsonBody(event: HttpEvent, limitBytes: number): { value: unknown; raw: string } {
  const contentType = header(event, 'content-type');
  const mediaType = contentType?.split(';')[0]?.trim() ?? '';
  if (!JSON_MEDIA_TYPE.test(mediaType)) {
    throw new AppError(
      'unsupported-media-type',
      contentType === undefined
        ? 'The request has no Content-Type; send application/json.'
        : `Content-Type ${truncate(mediaType)} is not supported; send application/json.`,
    );
  }
  const charset = /;\s*charset="?([^";]+)"?/i.exec(contentType ?? '')?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    throw new AppError('unsupported-media-type', `Charset ${truncate(charset)} is not supported; send UTF-8.`);
  }
  const raw = decodeBody(event);
  if (Buffer.byteLength(raw) > limitBytes) {
    throw new AppError('payload-too-large', `The body exceeds the limit of ${limitBytes} bytes.`);
  }
  if (raw.trim().length === 0) throw new AppError('malformed-json', 'The request body is empty; send a JSON object.');
  try {
    return { value: JSON.parse(raw), raw };
  } catch (error) {
    const why = error instanceof Error ? error.message : 'unparseable';
    throw new AppError('malformed-json', `The body is not valid JSON: ${truncate(why, 200)}`);
  }
}

function decodeBody(event: HttpEvent): string {
  const body = event.body ?? '';
  if (!event.isBase64Encoded) return body;
  try {
    return STRICT_UTF8.decode(Buffer.from(body, 'base64'));
  } catch {
    throw new AppError('malformed-json', 'The body is not valid UTF-8.');
  }
}

const truncate = (text: string, max = 80): string => (text.length > max ? `${text.slice(0, max)}…` : text);
