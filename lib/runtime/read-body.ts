import type { IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { AppError } from '#lib/errors';

/** The `Content-Encoding`s a request body may have, decoded while it streams in. */
const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
  // Node ≥ 23.8 has zstd in zlib; older ones simply do not offer it.
  ...(typeof zlib.createZstdDecompress === 'function' && { zstd: () => zlib.createZstdDecompress() }),
};
export const SUPPORTED_ENCODINGS: readonly string[] = Object.keys(DECODERS).filter((name) => name !== 'x-gzip');

/** How a body is encoded: undefined for identity; throws a 415 for anything else than one supported coding. */
export function bodyEncodingOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const codings = header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  if (codings.length === 0) return undefined;
  const [only] = codings;
  if (codings.length === 1 && only !== undefined && Object.hasOwn(DECODERS, only)) return only;
  throw new AppError(
    'unsupported-media-type',
    `Content-Encoding ${header.slice(0, 60)} is not supported; send one of ${SUPPORTED_ENCODINGS.join(', ')}, or none.`,
    // RFC 9110 §12.5.3: a 415 for an encoding says which ones would do.
    { headers: { 'accept-encoding': SUPPORTED_ENCODINGS.join(', ') } },
  );
}

/**
 * Reads the whole body, or resolves undefined as soon as it passes `limit` bytes, as sent (declared or streamed)
 * and, for an encoded body, as decoded: a decompression bomb is stopped once `limit` bytes came out of it, not
 * inflated to the end. Rejects with a 400 for a body that is not valid in its encoding.
 */
export function readBody(req: IncomingMessage, limit: number, encoding?: string): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(undefined);
  const decoder = encoding === undefined ? undefined : DECODERS[encoding]?.();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let size = 0;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      outcome();
    };
    const tooLarge = () =>
      settle(() => {
        chunks.length = 0;
        decoder?.destroy();
        resolve(undefined);
      });
    const keep = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge();
      else chunks.push(chunk);
    };
    // One chunk (the usual small body) is used as it is: no copy.
    const complete = () => settle(() => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) tooLarge();
      else if (decoder === undefined) keep(chunk);
      else decoder.write(chunk);
    };
    req.on('data', onData);
    req.once('error', (error) => settle(() => reject(error)));
    if (decoder === undefined) {
      req.once('end', complete);
      return;
    }
    decoder.on('data', keep);
    decoder.once('end', complete);
    decoder.once('error', () =>
      settle(() => reject(new AppError('malformed-request', `The body is not valid ${encoding} data.`))),
    );
    req.once('end', () => decoder.end());
  });
}
