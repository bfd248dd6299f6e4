import { isUtf8 } from 'node:buffer';
import { AppError } from '#lib/errors';
import { type HttpRequest, header } from './request.ts';

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;
const NDJSON_MEDIA_TYPE = /^application\/(?:x-ndjson|jsonl|x-jsonlines)$/i;

/** How a body is written: one JSON document, or newline-delimited JSON (one document a line). */
export type BodyFormat = 'json' | 'ndjson';
export const MEDIA_TYPES: Readonly<Record<BodyFormat, string>> = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
};

/**
 * The format of a matched route's body: 415 unless the media type is one of `accepted` in UTF-8. Called by the
 * route, not as a middleware, so that an unknown route or method answers 404/405 whatever its body.
 */
export function bodyFormatOf(request: HttpRequest, accepted: readonly BodyFormat[] = ['json']): BodyFormat {
  const contentType = header(request, 'content-type');
  const mediaType = contentType?.split(';')[0]?.trim() ?? '';
  const format: BodyFormat | undefined = JSON_MEDIA_TYPE.test(mediaType)
    ? 'json'
    : NDJSON_MEDIA_TYPE.test(mediaType)
      ? 'ndjson'
      : undefined;
  if (format === undefined || !accepted.includes(format)) {
    const wanted = accepted.map((f) => MEDIA_TYPES[f]).join(' or ');
    throw new AppError(
      'unsupported-media-type',
      contentType === undefined
        ? `The request has no Content-Type; send ${wanted}.`
        : `Content-Type ${truncate(mediaType)} is not supported; send ${wanted}.`,
    );
  }
  const charset = /;\s*charset="?([^";]+)"?/i.exec(contentType ?? '')?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    throw new AppError('unsupported-media-type', `Charset ${truncate(charset)} is not supported; send UTF-8.`);
  }
  return format;
}

/** The body as UTF-8 text, 400 when empty or not UTF-8. The edge has already capped (and decoded) it. */
function textOf(request: HttpRequest, what: string): string {
  const bytes = request.body;
  if (bytes === undefined || bytes.length === 0) {
    throw new AppError('malformed-json', `The request body is empty; send ${what}.`);
  }
  // Validated natively (simdutf) rather than by a fatal TextDecoder: invalid bytes must not be replaced silently.
  if (!isUtf8(bytes)) throw new AppError('malformed-json', 'The body is not valid UTF-8.');
  const text = bytes.toString('utf8');
  if (text.trim().length === 0) throw new AppError('malformed-json', `The request body is empty; send ${what}.`);
  return text;
}

const parseError = (error: unknown) => truncate(error instanceof Error ? error.message : 'unparseable', 200);

/** The JSON body of a matched route: 415 unless it is JSON in UTF-8, 400 for an empty or malformed body. */
export function jsonBody(request: HttpRequest): unknown {
  bodyFormatOf(request, ['json']);
  return parseJson(request);
}

/** The body of a route that checked `bodyFormatOf` already, as one JSON document. */
export function parseJson(request: HttpRequest): unknown {
  const text = textOf(request, 'a JSON object');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new AppError('malformed-json', `The body is not valid JSON: ${parseError(error)}`);
  }
}

/**
 * The body of a route that checked `bodyFormatOf` already, as NDJSON: one JSON document a line (LF or CRLF), a
 * final newline optional. Line n is element n-1, so errors name it as `pointerOf(n - 1)`; an empty line
 * inside the body is refused rather than skipped, which would shift every later line's pointer.
 */
export function parseNdjson(request: HttpRequest, pointerOf: (index: number) => string): unknown[] {
  const lines = textOf(request, 'one JSON object a line').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const where = { issues: [{ pointer: pointerOf(index), detail: `line ${index + 1}` }] };
    if (line.trim() === '') throw new AppError('malformed-json', `Line ${index + 1} is empty.`, where);
    try {
      return JSON.parse(line) as unknown;
    } catch (error) {
      throw new AppError('malformed-json', `Line ${index + 1} is not valid JSON: ${parseError(error)}`, where);
    }
  });
}

const truncate = (text: string, max = 80): string => (text.length > max ? `${text.slice(0, max)}…` : text);
