/** A response body ready to send, with its validator. */
export interface ReadyResponse {
  readonly body: string;
  readonly etag: string;
}

export interface ResponseTier {
  get(key: string): ReadyResponse | undefined;
  set(key: string, response: ReadyResponse): void;
  stats(): { readonly entries: number; readonly bytes: number; readonly hits: number; readonly misses: number };
}

/**
 * A bounded in-process tier of ready-to-send responses for immutable resources: a hit costs no Redis round
 * trip, no JSON parse or stringify and no hash. Safe only for things that never change once they exist, so it
 * must only ever hold positive answers (a 404 can be invalidated by a write in another process). Evicts oldest
 * first once either bound is passed.
 */
export function createResponseTier({ maxEntries, maxBytes }: { maxEntries: number; maxBytes: number }): ResponseTier {
  const entries = new Map<string, ReadyResponse>();
  let bytes = 0;
  let hits = 0;
  let misses = 0;
  const sizeOf = (key: string, response: ReadyResponse) =>
    2 * (key.length + response.body.length + response.etag.length);

  return {
    get(key) {
      const found = entries.get(key);
      if (found === undefined) misses++;
      else hits++;
      return found;
    },
    set(key, response) {
      if (maxEntries === 0 || entries.has(key)) return;
      const size = sizeOf(key, response);
      if (size > maxBytes) return;
      entries.set(key, response);
      bytes += size;
      for (const [oldest, value] of entries) {
        if (entries.size <= maxEntries && bytes <= maxBytes) break;
        entries.delete(oldest);
        bytes -= sizeOf(oldest, value);
      }
    },
    stats: () => ({ entries: entries.size, bytes, hits, misses }),
  };
}
