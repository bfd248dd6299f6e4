import { describe, expect, it } from '@jest/globals';
import { createResponseTier } from '#lib/cache';

const ready = (json: string) => ({ json, etag: `"${json.length}"`, source: 's' });

describe('createResponseTier', () => {
  it('returns what was stored and counts hits and misses', () => {
    const tier = createResponseTier({ maxEntries: 10, maxBytes: 10_000 });
    expect(tier.get('a')).toBeUndefined();
    tier.set('a', ready('{"id":"a"}'));
    expect(tier.get('a')).toEqual(ready('{"id":"a"}'));
    expect(tier.stats()).toMatchObject({ entries: 1, hits: 1, misses: 1 });
  });

  it('evicts the least recently used entries past the entry bound', () => {
    const tier = createResponseTier({ maxEntries: 3, maxBytes: 1_000_000 });
    for (const key of ['a', 'b', 'c']) tier.set(key, ready(key));
    // A read makes `a` the most recently used: `b` and `c` go first.
    expect(tier.get('a')).toBeDefined();
    for (const key of ['d', 'e']) tier.set(key, ready(key));
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => tier.get(k) !== undefined)).toEqual([true, false, false, true, true]);
    expect(tier.stats().entries).toBe(3);
  });

  it('stays within the byte bound and refuses a single response larger than it', () => {
    const tier = createResponseTier({ maxEntries: 1_000, maxBytes: 1_000 });
    for (let i = 0; i < 50; i++) tier.set(`k${i}`, ready('x'.repeat(100)));
    expect(tier.stats().bytes).toBeLessThanOrEqual(1_000);
    expect(tier.get('k49')).toBeDefined();
    tier.set('huge', ready('x'.repeat(2_000)));
    expect(tier.get('huge')).toBeUndefined();
  });

  it('holds nothing when sized to zero entries', () => {
    const tier = createResponseTier({ maxEntries: 0, maxBytes: 1_000 });
    tier.set('a', ready('a'));
    expect(tier.get('a')).toBeUndefined();
  });
});
