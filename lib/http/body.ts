import { isUtf8 } from 'node:buffer';
import { AppError } from '#lib/errors';
import { type HttpRequest, header } from './request.ts';

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;

/**
 * The JSON body of a matched route: 415 unless the media type is JSON in UTF-8, 400 for an empty, non-UTF-8
 * or malformed body. The edge has already capped its size while it streamed in. Called by the route, not as a
 * middleware, so that an unknown route or method answers 404/405 whatever its body.
 */
export function jsonBody(request: HttpRequest): unknown {
  const contentType = header(request, 'content-type');
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
  const bytes = request.body;
  if (bytes === undefined || bytes.length === 0) {
    throw new AppError('malformed-json', 'The request body is empty; send a JSON object.');
  }
  // Validated natively (simdutf) rather than by a fatal TextDecoder: invalid bytes must not be replaced silently.
  if (!isUtf8(bytes)) throw new AppError('malformed-json', 'The body is not valid UTF-8.');
  const text = bytes.toString('utf8');
  if (text.trim().length === 0) throw new AppError('malformed-json', 'The request body is empty; send a JSON object.');
  try {
    return JSON.parse(text);
  } catch (error) {
    const why = error instanceof Error ? error.message : 'unparseable';
    throw new AppError('malformed-json', `The body is not valid JSON: ${truncate(why, 200)}`);
  }
}

const truncate = (text: string, max = 80): string => (text.length > max ? `${text.slice(0, max)}…` : text);
