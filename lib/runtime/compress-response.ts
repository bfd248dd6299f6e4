/**
 * Large answers compressed for clients that ask (`Accept-Encoding`): brotli or gzip at their fastest setting,
 * on libuv's thread pool, so the event loop never waits for it. Only answers without an ETag: a strong ETag names
 * one representation, and a compressed one would need its own (records are small and cached ready to send).
 * A streamed body (an export) is compressed as it streams, whatever its size, since its size is not known.
 */
import { pipeline, Readable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { type HttpResponse, isStreamBody, responseCodingOf, type StreamBody } from '#lib/http';

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);
const BROTLI_FAST = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } };
const GZIP_FAST = { level: 1 };

/**
 * `response`, compressed when it is at least `minBytes` (a stream: when `minBytes` is not 0), has no ETag or
 * encoding yet, and the client accepts it.
 */
export async function compressResponse(
  response: HttpResponse,
  accept: string | undefined,
  minBytes: number,
): Promise<HttpResponse> {
  const { headers, body } = response;
  const size = isStreamBody(body)
    ? Number.POSITIVE_INFINITY
    : typeof body === 'string'
      ? Buffer.byteLength(body)
      : body.length;
  if (minBytes === 0 || size < minBytes || headers.etag !== undefined || headers['content-encoding'] !== undefined) {
    return response;
  }
  const vary = headers.vary ? `${headers.vary}, Accept-Encoding` : 'Accept-Encoding';
  const coding = responseCodingOf(accept);
  if (coding === undefined) return { ...response, headers: { ...headers, vary } };
  const compressed = isStreamBody(body)
    ? compressStream(body, coding)
    : coding === 'br'
      ? await brotli(body, BROTLI_FAST)
      : await gzip(body, GZIP_FAST);
  return { ...response, headers: { ...headers, vary, 'content-encoding': coding }, body: compressed };
}

/**
 * `body` through a compressor, as a stream of compressed chunks. Backpressure runs end to end: the compressor
 * pulls one chunk of `body` at a time while its output is taken. A failing `body` fails the compressed stream (the
 * edge then ends the response abnormally); a consumer that stops reading destroys the compressor, and pipeline
 * then returns `body`'s iterator, so its producer stops too.
 */
function compressStream(body: StreamBody, coding: 'br' | 'gzip'): StreamBody {
  const compressor = coding === 'br' ? zlib.createBrotliCompress(BROTLI_FAST) : zlib.createGzip(GZIP_FAST);
  // The error reaches the consumer through the compressor, which pipeline destroys with it.
  pipeline(Readable.from(body, { highWaterMark: 1 }), compressor, () => undefined);
  return compressor;
}
