/**
 * Opaque keyset cursors. A cursor names the last row of a page, the filters and the caller it was issued for,
 * authenticated with an HMAC so that a cursor altered by a client, replayed with other filters or by another
 * caller, is refused with a 400 instead of silently paging through something else.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '#lib/errors';
import { isUuid } from './ids.ts';
import { parseRfc3339 } from './timestamp.ts';
import type { KeysetPosition, ListFilter } from './types.ts';

const VERSION = 1;
const MAC_BYTES = 12;
const MAX_CURSOR_LENGTH = 512;

export interface CursorCodec {
  /** `caller`: the id of the caller it is issued to ('' without authentication). */
  encode(position: KeysetPosition, filter: ListFilter, caller?: string): string;
  /** Throws an `invalid-cursor` AppError for anything this codec did not issue for the same filter and caller. */
  decode(cursor: string, filter: ListFilter, caller?: string): KeysetPosition;
}

/** Creates a codec keyed by `secret`; every instance of the query function must share it. */
export function createCursorCodec(secret: string): CursorCodec {
  const mac = (payload: Buffer): Buffer => createHmac('sha256', secret).update(payload).digest().subarray(0, MAC_BYTES);

  return {
    encode(position, filter, caller = '') {
      const payload = Buffer.from(
        JSON.stringify([VERSION, position.timestamp, position.id, filterDigest(filter, caller)]),
      );
      return Buffer.concat([payload, mac(payload)]).toString('base64url');
    },

    decode(cursor, filter, caller = '') {
      if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
        throw invalid('is not a cursor issued by this service');
      }
      const raw = Buffer.from(cursor, 'base64url');
      // Base64 decoding ignores the unused low bits of the last character; re-encoding catches edits there.
      if (raw.length <= MAC_BYTES || raw.toString('base64url') !== cursor)
        throw invalid('is not a cursor issued by this service');
      const payload = raw.subarray(0, raw.length - MAC_BYTES);
      const tag = raw.subarray(raw.length - MAC_BYTES);
      if (!timingSafeEqual(tag, mac(payload))) throw invalid('is not a cursor issued by this service, or was altered');
      const parsed = safeParse(payload.toString('utf8'));
      if (!Array.isArray(parsed) || parsed.length !== 4 || parsed[0] !== VERSION) {
        throw invalid('was issued by an incompatible version of this service');
      }
      const [, timestamp, id, digest] = parsed as [number, unknown, unknown, unknown];
      if (typeof timestamp !== 'string' || parseRfc3339(timestamp) === undefined) throw invalid('is malformed');
      if (typeof id !== 'string' || !isUuid(id)) throw invalid('is malformed');
      if (digest !== filterDigest(filter, caller)) {
        throw invalid('belongs to a query with other source, type, from or to parameters, or to another caller');
      }
      return { timestamp, id };
    },
  };
}

function filterDigest(filter: ListFilter, caller: string): string {
  const fields = [filter.source ?? null, filter.type ?? null, filter.from ?? null, filter.to ?? null];
  // Without authentication (caller '') the digest is what it was before cursors named their caller.
  const canonical = JSON.stringify(caller === '' ? fields : [...fields, caller]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const invalid = (why: string): AppError =>
  new AppError('invalid-cursor', `The cursor ${why}.`, { issues: [{ pointer: '/cursor', detail: why }] });
