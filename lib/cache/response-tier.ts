import { LRUCache } from 'lru-cache';
import type { RecordDocument } from '#lib/records';

export interface ResponseTier {
  get(id: string): RecordDocument | undefined;
  set(id: string, document: RecordDocument): void;
  stats(): { readonly entries: number; readonly bytes: number; readonly hits: number; readonly misses: number };
}

/**
 * The in-process tier of ready record documents, least recently used out first, bounded in entries and in bytes
 * (a document larger than the byte bound is never held). Safe only because records never change once they
 * exist, so it holds positive answers only: a 404 can be ended by a write in another process at any moment.
 */
export function createResponseTier({ maxEntries, maxBytes }: { maxEntries: number; maxBytes: number }): ResponseTier {
  let hits = 0;
  let misses = 0;
  if (maxEntries === 0 || maxBytes === 0) {
    return {
      get: () => {
        misses++;
        return undefined;
      },
      set: () => undefined,
      stats: () => ({ entries: 0, bytes: 0, hits, misses }),
    };
  }
  // UTF-16 code units, as V8 holds most strings: an upper bound of what an entry keeps alive.
  const sizeOf = (document: RecordDocument, id: string) =>
    2 * (id.length + document.json.length + document.etag.length);
  const cache = new LRUCache<string, RecordDocument>({ max: maxEntries, maxSize: maxBytes, sizeCalculation: sizeOf });
  return {
    get(id) {
      const found = cache.get(id);
      if (found === undefined) misses++;
      else hits++;
      return found;
    },
    set(id, document) {
      if (sizeOf(document, id) <= maxBytes) cache.set(id, document);
    },
    stats: () => ({ entries: cache.size, bytes: cache.calculatedSize, hits, misses }),
  };
}
