/**
 * Large answers compressed for clients that ask (`Accept-Encoding`): brotli or gzip at their fastest setting,
 * on libuv's thread pool, so the event loop never waits for it. Only answers without an ETag: a strong ETag names
 * one representation, and a compressed one would need its own (records are small and cached ready to send).
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { type HttpResponse, responseCodingOf } from '#lib/http';

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);
const BROTLI_FAST = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } };
const GZIP_FAST = { level: 1 };

/** `response`, compressed when it is at least `minBytes`, has no ETag or encoding yet, and the client accepts it. */
export async function compressResponse(
  response: HttpResponse,
  accept: string | undefined,
  minBytes: number,
): Promise<HttpResponse> {
  const { headers } = response;
  const size = typeof response.body === 'string' ? Buffer.byteLength(response.body) : response.body.length;
  if (minBytes === 0 || size < minBytes || headers.etag !== undefined || headers['content-encoding'] !== undefined) {
    return response;
  }
  const vary = headers.vary ? `${headers.vary}, Accept-Encoding` : 'Accept-Encoding';
  const coding = responseCodingOf(accept);
  if (coding === undefined) return { ...response, headers: { ...headers, vary } };
  const body = coding === 'br' ? await brotli(response.body, BROTLI_FAST) : await gzip(response.body, GZIP_FAST);
  return { ...response, headers: { ...headers, vary, 'content-encoding': coding }, body };
}
