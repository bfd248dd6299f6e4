/**
 * The one error hierarchy of the service. Every error a client may cause or observe carries a stable `code`;
 * `lib/http` maps codes to HTTP statuses and problem+json bodies in a single table, so no module below it needs
 * to know about HTTP.
 */

/** One failing field, located by an RFC 6901 JSON pointer into the request. */
export interface FieldIssue {
  readonly pointer: string;
  readonly detail: string;
}

export type ErrorCode =
  | 'malformed-request'
  | 'request-timeout'
  | 'headers-too-large'
  | 'malformed-json'
  | 'unsupported-media-type'
  | 'payload-too-large'
  | 'validation-failed'
  | 'invalid-parameter'
  | 'invalid-cursor'
  | 'invalid-header'
  | 'not-found'
  | 'unauthorized'
  | 'forbidden'
  | 'id-conflict'
  | 'timestamp-not-stored'
  | 'rate-limited'
  | 'record-archived'
  | 'route-not-found'
  | 'method-not-allowed'
  | 'idempotency-key-reused'
  | 'idempotency-in-flight'
  | 'overloaded'
  | 'dependency-unavailable'
  | 'timeout'
  | 'internal';

export interface AppErrorOptions {
  readonly issues?: readonly FieldIssue[];
  /** Seconds a client should wait before retrying (overload and dependency failures). */
  readonly retryAfterSeconds?: number;
  /** Extra members for the problem body or response headers, e.g. the allowed methods of a 405. */
  readonly allow?: readonly string[];
  /** Response headers this answer needs (`WWW-Authenticate` of a 401/403, the `RateLimit` fields of a 429). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly cause?: unknown;
}

/** Base class of every error whose message is safe to show to a client. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly issues: readonly FieldIssue[];
  readonly retryAfterSeconds: number | undefined;
  readonly allow: readonly string[] | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: ErrorCode, detail: string, options: AppErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.issues = options.issues ?? [];
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.allow = options.allow;
    this.headers = options.headers;
  }
}

/** A request that broke the record schema; lists every failing field. */
export class ValidationError extends AppError {
  constructor(issues: readonly FieldIssue[], detail = describeIssues(issues)) {
    super('validation-failed', detail, { issues });
    this.name = 'ValidationError';
  }
}

/** A query-string or path parameter that cannot be used. */
export class InvalidParameterError extends AppError {
  constructor(issues: readonly FieldIssue[], detail = describeIssues(issues)) {
    super('invalid-parameter', detail, { issues });
    this.name = 'InvalidParameterError';
  }
}

/** A backing service (PostgreSQL, ...) is unreachable or failing; the request may succeed later. */
export class DependencyUnavailableError extends AppError {
  readonly dependency: string;

  constructor(dependency: string, cause: unknown, retryAfterSeconds = 1) {
    super('dependency-unavailable', `The ${dependency} is unavailable; retry later.`, { cause, retryAfterSeconds });
    this.name = 'DependencyUnavailableError';
    this.dependency = dependency;
  }
}

/**
 * A write given up before its commit: its deadline passed or its client left (lib/records/write-deadline.ts).
 * Nothing of it was or will be stored, so a retry is safe.
 */
export class WriteAbandonedError extends AppError {
  constructor(reason: string) {
    super('timeout', `${reason}; nothing was stored, retry shortly.`, { retryAfterSeconds: 1 });
    this.name = 'WriteAbandonedError';
  }
}

/** Ids already stored with other content (the database compares content digests); nothing of the write is stored. */
export class IdConflictError extends AppError {
  readonly ids: readonly string[];

  constructor(ids: readonly string[], issues: readonly FieldIssue[] = []) {
    super(
      'id-conflict',
      `The id ${ids[0]}${ids.length > 1 ? ` (and ${ids.length - 1} more)` : ''} is already stored with other content; nothing was stored. Send new content with a new id.`,
      { issues },
    );
    this.name = 'IdConflictError';
    this.ids = ids;
  }
}

/**
 * Records whose UTC day has no partition and may not get one: the day is outside the write window as PostgreSQL's
 * clock says (the validator judged by the pod's clock, which may be off). Final: the same request fails the same way.
 */
export class TimestampNotStoredError extends AppError {
  /** The refused UTC days, `YYYY-MM-DD`. */
  readonly days: readonly string[];

  constructor(days: readonly string[], issues: readonly FieldIssue[] = []) {
    super(
      'timestamp-not-stored',
      `No record of the day ${days.join(', ')} is stored here: it is outside the accepted time window by the database's clock; nothing was stored. Do not retry this timestamp.`,
      { issues },
    );
    this.name = 'TimestampNotStoredError';
    this.days = days;
  }
}

export const isAppError = (error: unknown): error is AppError => error instanceof AppError;

function describeIssues(issues: readonly FieldIssue[]): string {
  const first = issues[0];
  if (first === undefined) return 'The request is invalid.';
  const where = first.pointer === '' ? 'the body' : first.pointer;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  return `${where}: ${first.detail}${more}`;
}

/** Escapes one JSON-pointer reference token (RFC 6901 §3). */
export const escapePointerToken = (token: string | number): string =>
  String(token).replaceAll('~', '~0').replaceAll('/', '~1');

/** Builds a JSON pointer from path segments. */
export const toPointer = (path: readonly (string | number)[]): string =>
  path.map((segment) => `/${escapePointerToken(segment)}`).join('');
