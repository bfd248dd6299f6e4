/**
 * Response checks as pure functions over `{status, headers, body}`: the contract of README.md's API table, applied
 * to every response a load run gets (k6 through `check()`, the local runner over vegeta's encoded results, jest
 * directly). Each returns the list of what is wrong, empty when the response keeps the contract.
 */
import type { JsonObject, RecordBody } from './records.ts';
import type { Expectation, RequestSpec } from './requests.ts';

/** One response, headers with lower-case names. */
export interface Exchange {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export const PROBLEM_TYPE_BASE = 'https://data-service.dev/problems/';
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** What a record answers with while auth is on: only the caller's own cache may keep it. */
export const PRIVATE_IMMUTABLE_CACHE_CONTROL = 'private, max-age=31536000, immutable';

/** Lower-cases header names and joins repeated values (k6 gives `Content-Type`, vegeta `{"Content-Type": [...]}`). */
export function normalizeHeaders(
  raw: Readonly<Record<string, string | readonly string[] | undefined>> | null | undefined,
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of Object.keys(raw ?? {})) {
    const value = raw?.[name];
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : value.join(', ');
    const key = name.toLowerCase();
    headers[key] = headers[key] === undefined ? text : `${headers[key]}, ${text}`;
  }
  return headers;
}

/** The status a request's expectation calls success (what k6's `expectedStatuses` is given). */
export function expectedStatus(expect: Expectation): number {
  switch (expect.kind) {
    case 'created':
      return 201;
    case 'not-modified':
      return 304;
    case 'problem':
    case 'replay':
      return expect.status;
    default:
      return 200;
  }
}

export interface CheckOptions {
  /** Accept 429/503 (well-formed, with Retry-After) as load shedding, as a spike test must. */
  readonly allowShed?: boolean;
}

/** True for the answers a service gives when it sheds load by design. */
export const isShed = (exchange: Pick<Exchange, 'status'>): boolean =>
  exchange.status === 429 || exchange.status === 503;

/** Everything wrong with `exchange` as the answer to `spec`; empty when it keeps the contract. */
export function checkExchange(spec: RequestSpec, exchange: Exchange, options: CheckOptions = {}): string[] {
  const failures: string[] = [];
  const want = expectedStatus(spec.expect);
  if (options.allowShed === true && isShed(exchange)) return checkProblemShape(exchange);
  if (exchange.status !== want) {
    failures.push(`status ${exchange.status}, expected ${want}${describeUnexpected(exchange)}`);
    // An unexpected error must still be a well-formed problem; anything else says nothing more useful.
    if (exchange.status >= 400) failures.push(...checkProblemShape(exchange));
    return failures;
  }
  if (spec.expect.kind !== 'probe') {
    const sent = headerOf(spec.headers, 'x-request-id');
    const echoed = exchange.headers['x-request-id'];
    if (echoed === undefined || echoed === '') failures.push('no x-request-id header');
    else if (sent !== undefined && echoed !== sent) failures.push(`x-request-id ${echoed}, sent ${sent}`);
  }
  failures.push(...checkBody(spec.expect, exchange));
  return failures;
}

function checkBody(expect: Expectation, exchange: Exchange): string[] {
  switch (expect.kind) {
    case 'created':
      return checkCreated(expect.ids, expect.status, exchange);
    case 'record':
      return checkRecord(expect.record, exchange);
    case 'not-modified':
      return checkNotModified(expect.etag, exchange);
    case 'page':
      return checkPage(expect, exchange);
    case 'problem':
      return checkProblem(expect.code, expect.pointers ?? [], exchange);
    case 'replay':
      return exchange.body === expect.body ? [] : ['replayed body differs from the first response'];
    case 'openapi':
      return checkOpenApi(exchange);
    case 'probe':
      return isJson(exchange) ? [] : [`content-type ${exchange.headers['content-type'] ?? '(none)'}, expected JSON`];
  }
}

/** `201 {"records":[{"id","status"}]}` listing exactly `ids` in order; `Location` for a single record. */
export function checkCreated(
  ids: readonly string[],
  status: 'created' | 'duplicate' | undefined,
  exchange: Exchange,
): string[] {
  const failures = jsonFailures(exchange);
  const body = parseObject(exchange.body);
  if (body === undefined) return [...failures, 'body is not a JSON object'];
  const records = body.records;
  if (!Array.isArray(records)) return [...failures, 'body.records is not an array'];
  if (records.length !== ids.length) failures.push(`${records.length} results for ${ids.length} records`);
  records.forEach((result, index) => {
    const entry = isObject(result) ? result : {};
    const want = ids[index];
    if (want !== undefined && entry.id !== want)
      failures.push(`records[${index}].id ${String(entry.id)}, sent ${want}`);
    if (entry.status !== 'created' && entry.status !== 'duplicate') {
      failures.push(`records[${index}].status ${String(entry.status)}`);
    } else if (status !== undefined && entry.status !== status) {
      failures.push(`records[${index}].status ${entry.status}, expected ${status}`);
    }
  });
  if (ids.length === 1 && exchange.headers.location !== `/data/${ids[0]}`) {
    failures.push(`location ${exchange.headers.location ?? '(none)'}, expected /data/${ids[0]}`);
  }
  return failures;
}

/** `200` with the record as sent (plus `received_at`), a strong ETag and immutable caching. */
export function checkRecord(record: RecordBody, exchange: Exchange): string[] {
  const failures = jsonFailures(exchange);
  if (!/^"[^"]+"$/.test(exchange.headers.etag ?? '')) failures.push(`etag ${exchange.headers.etag ?? '(none)'}`);
  const cacheControl = exchange.headers['cache-control'];
  if (cacheControl !== IMMUTABLE_CACHE_CONTROL && cacheControl !== PRIVATE_IMMUTABLE_CACHE_CONTROL) {
    failures.push(`cache-control ${exchange.headers['cache-control'] ?? '(none)'}`);
  }
  const body = parseObject(exchange.body);
  if (body === undefined) return [...failures, 'body is not a JSON object'];
  failures.push(...compareRecord(record, body, ''));
  return failures;
}

/** Where a served record differs from the one sent: same id, names and payload, the same instant in UTC. */
export function compareRecord(sent: RecordBody, served: JsonObject, at: string): string[] {
  const failures: string[] = [];
  if (served.id !== sent.id) failures.push(`${at}id ${String(served.id)}, expected ${sent.id}`);
  if (served.source !== sent.source) failures.push(`${at}source ${String(served.source)}`);
  if (served.type !== sent.type) failures.push(`${at}type ${String(served.type)}`);
  const timestamp = typeof served.timestamp === 'string' ? served.timestamp : '';
  if (!timestamp.endsWith('Z') || Date.parse(timestamp) !== Date.parse(sent.timestamp)) {
    failures.push(`${at}timestamp ${timestamp || '(none)'} is not ${sent.timestamp} in UTC`);
  }
  if (typeof served.received_at !== 'string' || Number.isNaN(Date.parse(served.received_at))) {
    failures.push(`${at}received_at missing or not a date-time`);
  }
  if (!jsonEqual(served.payload, sent.payload)) failures.push(`${at}payload differs from the one sent`);
  return failures;
}

/** `304` with the same ETag and no body. */
export function checkNotModified(etag: string, exchange: Exchange): string[] {
  const failures: string[] = [];
  if (exchange.headers.etag !== etag) failures.push(`etag ${exchange.headers.etag ?? '(none)'}, expected ${etag}`);
  if (exchange.body !== '') failures.push('304 with a body');
  return failures;
}

/** A list page: newest first, filters honoured, `limit` kept, `next_cursor` and `Link: rel="next"` together. */
export function checkPage(expect: Extract<Expectation, { kind: 'page' }>, exchange: Exchange): string[] {
  const failures = jsonFailures(exchange);
  const body = parseObject(exchange.body);
  if (body === undefined) return [...failures, 'body is not a JSON object'];
  const { records, next_cursor: next } = body;
  if (!Array.isArray(records)) return [...failures, 'body.records is not an array'];
  if (next !== null && (typeof next !== 'string' || next === '')) failures.push('next_cursor is neither null nor text');
  if (records.length > expect.limit) failures.push(`${records.length} records on a page of limit ${expect.limit}`);
  const link = exchange.headers.link ?? '';
  if (typeof next === 'string' && !(link.includes('rel="next"') && link.includes('cursor='))) {
    failures.push('next_cursor without a Link rel="next" header');
  }
  if (next === null && link !== '') failures.push('Link header on the last page');
  if (expect.next !== undefined && expect.next !== (typeof next === 'string')) {
    failures.push(expect.next ? 'no next_cursor, expected more pages' : 'next_cursor on what should be the last page');
  }
  let previous: { at: number; id: string } | undefined;
  records.forEach((item, index) => {
    if (!isObject(item)) {
      failures.push(`records[${index}] is not an object`);
      return;
    }
    if (expect.source !== undefined && item.source !== expect.source) {
      failures.push(`records[${index}].source ${String(item.source)}`);
    }
    const at = typeof item.timestamp === 'string' ? Date.parse(item.timestamp) : Number.NaN;
    const id = typeof item.id === 'string' ? item.id : '';
    if (Number.isNaN(at) || id === '') failures.push(`records[${index}] has no id or timestamp`);
    else if (previous !== undefined && (at > previous.at || (at === previous.at && id > previous.id))) {
      failures.push(`records[${index}] is newer than records[${index - 1}]: not newest first`);
    }
    previous = { at, id };
  });
  if (expect.ids !== undefined) {
    const got = records.map((item) => (isObject(item) ? item.id : undefined));
    if (got.join(',') !== expect.ids.join(','))
      failures.push(`ids [${got.join(', ')}], expected [${expect.ids.join(', ')}]`);
  }
  return failures;
}

/** An RFC 9457 problem of type `code`, naming at least `pointers` in `errors`. */
export function checkProblem(code: string, pointers: readonly string[], exchange: Exchange): string[] {
  const failures = checkProblemShape(exchange);
  const body = parseObject(exchange.body);
  if (body === undefined) return failures;
  if (body.type !== PROBLEM_TYPE_BASE + code) failures.push(`type ${String(body.type)}, expected ${code}`);
  const named = Array.isArray(body.errors) ? body.errors.map((e) => (isObject(e) ? e.pointer : undefined)) : [];
  for (const pointer of pointers) if (!named.includes(pointer)) failures.push(`errors do not name ${pointer}`);
  return failures;
}

/**
 * What every error response must be, whatever its status: `application/problem+json` with `type`, `title`,
 * the same `status`, a `detail`, well-formed `errors`; `Allow` on 405 and `Retry-After` on 429 and 503.
 */
export function checkProblemShape(exchange: Exchange): string[] {
  const failures: string[] = [];
  const type = mediaType(exchange);
  if (type !== 'application/problem+json')
    failures.push(`error with content-type ${type || '(none)'}, not problem+json`);
  const body = parseObject(exchange.body);
  if (body === undefined) return [...failures, 'problem body is not a JSON object'];
  if (typeof body.type !== 'string' || !body.type.startsWith(PROBLEM_TYPE_BASE))
    failures.push('problem without a stable type');
  if (typeof body.title !== 'string' || body.title === '') failures.push('problem without a title');
  if (body.status !== exchange.status) failures.push(`problem status ${String(body.status)} on a ${exchange.status}`);
  if (typeof body.detail !== 'string' || body.detail === '') failures.push('problem without a detail');
  if (body.errors !== undefined) {
    const wellFormed =
      Array.isArray(body.errors) &&
      body.errors.every((e) => isObject(e) && typeof e.pointer === 'string' && typeof e.detail === 'string');
    if (!wellFormed) failures.push('problem errors are not a list of {pointer, detail}');
  }
  if (exchange.status === 405 && !exchange.headers.allow) failures.push('405 without Allow');
  if ((exchange.status === 429 || exchange.status === 503) && !exchange.headers['retry-after']) {
    failures.push(`${exchange.status} without Retry-After`);
  }
  return failures;
}

function checkOpenApi(exchange: Exchange): string[] {
  const failures = jsonFailures(exchange);
  const body = parseObject(exchange.body);
  if (body === undefined || typeof body.openapi !== 'string' || !body.openapi.startsWith('3.1')) {
    failures.push('not an OpenAPI 3.1 document');
  }
  return failures;
}

function jsonFailures(exchange: Exchange): string[] {
  return isJson(exchange)
    ? []
    : [`content-type ${exchange.headers['content-type'] ?? '(none)'}, expected application/json`];
}

function describeUnexpected(exchange: Exchange): string {
  // Status 0: no answer at all; the adapters put the transport error in the body.
  if (exchange.status === 0) return exchange.body === '' ? ' (no response)' : ` (${exchange.body.slice(0, 200)})`;
  const body = exchange.status >= 400 ? parseObject(exchange.body) : undefined;
  const type = typeof body?.type === 'string' ? body.type.replace(PROBLEM_TYPE_BASE, '') : undefined;
  const detail = typeof body?.detail === 'string' ? body.detail : undefined;
  return type === undefined ? '' : ` (${type}: ${detail ?? ''})`;
}

const mediaType = (exchange: Exchange): string =>
  (exchange.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';

const isJson = (exchange: Exchange): boolean => mediaType(exchange) === 'application/json';

function headerOf(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return headers[key];
  return undefined;
}

function parseObject(text: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Deep equality of JSON values, ignoring object key order (PostgreSQL's jsonb reorders keys). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => key in b && jsonEqual(a[key], b[key]));
  }
  return false;
}
