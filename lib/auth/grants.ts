/**
 * What a caller may touch: write and read grants on source names, from the scopes of its token.
 *
 * A scope is `write:<pattern>` or `read:<pattern>`; a pattern is a source name (`sensor-1`), a prefix ending in
 * `*` (`sensor-*`), or `*` for every source. Source names cannot contain `*` (lib/records/schema.ts), so a
 * pattern means exactly one thing. Scopes of other audiences in the same token are ignored.
 */
import type { Caller } from '#lib/records';

/** Which sources one kind of access covers. */
export interface SourceGrant {
  /** Whether every source is covered (`*`). */
  readonly all: boolean;
  allows(source: string): boolean;
}

const NO_SOURCE: SourceGrant = { all: false, allows: () => false };
const EVERY_SOURCE: SourceGrant = { all: true, allows: () => true };

/** The caller of a verified token, in the shape the domain asks about (`Caller`, lib/records/ports.ts). */
export function principalOf(subject: string, grants: { write: SourceGrant; read: SourceGrant }): Caller {
  return {
    id: subject,
    mayWrite: grants.write.allows,
    mayRead: grants.read.allows,
    readsEverySource: grants.read.all,
  };
}

/** Everything, for everybody: the caller of every request while `AUTH_MODE=none`. */
export const ANONYMOUS: Caller = principalOf('', { write: EVERY_SOURCE, read: EVERY_SOURCE });

/** A grant of the given patterns (exact names and `prefix*`). */
export function sourceGrant(patterns: readonly string[]): SourceGrant {
  if (patterns.length === 0) return NO_SOURCE;
  if (patterns.includes('*')) return EVERY_SOURCE;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1));
    else exact.add(pattern);
  }
  return {
    all: false,
    allows: (source) => exact.has(source) || prefixes.some((prefix) => source.startsWith(prefix)),
  };
}

// A pattern may hold `*` only at its end; anything else in a scope is not ours and is ignored.
const SCOPE = /^(write|read):([A-Za-z0-9._:/-]*\*?)$/;

/**
 * The grants of a token's scope claim: a space-separated string (RFC 8693 §4.2) or, as some issuers send it, an
 * array of strings. Anything else grants nothing.
 */
export function grantsFromScopes(claim: unknown): { write: SourceGrant; read: SourceGrant } {
  const scopes =
    typeof claim === 'string'
      ? claim.split(' ')
      : Array.isArray(claim)
        ? claim.filter((s): s is string => typeof s === 'string')
        : [];
  const write: string[] = [];
  const read: string[] = [];
  for (const scope of scopes) {
    const match = SCOPE.exec(scope);
    if (!match?.[2]) continue;
    (match[1] === 'write' ? write : read).push(match[2]);
  }
  return { write: sourceGrant(write), read: sourceGrant(read) };
}

/** The scope claim for these grants (the inverse of `grantsFromScopes`), for issuing tokens. */
export const scopeOf = (grants: { write?: readonly string[]; read?: readonly string[] }): string =>
  [...(grants.write ?? []).map((p) => `write:${p}`), ...(grants.read ?? []).map((p) => `read:${p}`)].join(' ');
