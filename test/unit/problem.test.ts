import { describe, expect, it } from '@jest/globals';
import {
  AppError,
  DependencyUnavailableError,
  type ErrorCode,
  InvalidParameterError,
  ValidationError,
} from '#lib/errors';
import { PROBLEM_TYPE_BASE, problemCatalogue, problemResponse, problemType, statusOf } from '#lib/http';

const STATUS: Readonly<Record<ErrorCode, number>> = {
  'malformed-request': 400,
  'request-timeout': 408,
  'headers-too-large': 431,
  'malformed-json': 400,
  'invalid-parameter': 400,
  'invalid-cursor': 400,
  'invalid-header': 400,
  'route-not-found': 404,
  'not-found': 404,
  unauthorized: 401,
  forbidden: 403,
  'id-conflict': 409,
  'rate-limited': 429,
  'record-archived': 404,
  'method-not-allowed': 405,
  'idempotency-in-flight': 409,
  'payload-too-large': 413,
  'unsupported-media-type': 415,
  'validation-failed': 422,
  'timestamp-not-stored': 422,
  'idempotency-key-reused': 422,
  overloaded: 503,
  'dependency-unavailable': 503,
  timeout: 503,
  internal: 500,
};
const CODES = Object.keys(STATUS) as ErrorCode[];

const bodyOf = (response: { body: string }): Record<string, unknown> =>
  JSON.parse(response.body) as Record<string, unknown>;

describe('problemResponse', () => {
  it('catalogues exactly the known codes', () => {
    expect(
      problemCatalogue()
        .map((p) => p.code)
        .sort(),
    ).toEqual([...CODES].sort());
    for (const { code, status } of problemCatalogue()) expect(status).toBe(STATUS[code]);
  });

  it.each(CODES)('maps %s to its status and a stable problem+json body', (code) => {
    const response = problemResponse(new AppError(code, `Detail of ${code}.`));
    expect(response.statusCode).toBe(STATUS[code]);
    expect(statusOf(code)).toBe(STATUS[code]);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.headers['cache-control']).toBe('no-store');
    const body = bodyOf(response);
    expect(body.type).toBe(`https://data-service.dev/problems/${code}`);
    expect(problemType(code)).toBe(`${PROBLEM_TYPE_BASE}${code}`);
    expect(body.status).toBe(STATUS[code]);
    expect(typeof body.title).toBe('string');
    expect(body.title).not.toBe('');
    expect(body.detail).toBe(`Detail of ${code}.`);
    expect(body).not.toHaveProperty('errors');
    expect(response.headers).not.toHaveProperty('retry-after');
    expect(response.headers).not.toHaveProperty('allow');
  });

  it('lists every failing field of a validation error, and the request id and instance', () => {
    const issues = [
      { pointer: '/records/0/source', detail: 'is required' },
      { pointer: '/records/1/type', detail: 'must not be empty' },
    ];
    const response = problemResponse(new ValidationError(issues), { requestId: 'req-1', instance: '/data' });
    expect(response.statusCode).toBe(422);
    expect(bodyOf(response)).toEqual({
      type: 'https://data-service.dev/problems/validation-failed',
      title: 'Validation failed',
      status: 422,
      detail: '/records/0/source: is required (and 1 more problem)',
      instance: '/data',
      request_id: 'req-1',
      errors: issues,
    });
    const parameter = bodyOf(problemResponse(new InvalidParameterError([{ pointer: '/limit', detail: 'bad' }])));
    expect(parameter).toMatchObject({ status: 400, errors: [{ pointer: '/limit', detail: 'bad' }] });
  });

  it('sends Retry-After for overload and dependency failures', () => {
    const overloaded = problemResponse(new AppError('overloaded', 'Busy.', { retryAfterSeconds: 7 }));
    expect(overloaded.statusCode).toBe(503);
    expect(overloaded.headers['retry-after']).toBe('7');
    const dependency = problemResponse(new DependencyUnavailableError('database', new Error('ECONNREFUSED 10.0.0.7')));
    expect(dependency.statusCode).toBe(503);
    expect(dependency.headers['retry-after']).toBe('1');
    expect(dependency.body).not.toContain('ECONNREFUSED');
  });

  it('sends Allow with the allowed methods of a 405', () => {
    const response = problemResponse(new AppError('method-not-allowed', 'No.', { allow: ['GET', 'HEAD', 'POST'] }));
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD, POST');
  });

  it('maps a TimeoutError to a 503 timeout with Retry-After, hiding its message', () => {
    const error = new Error('query_timeout on SELECT * FROM secrets');
    error.name = 'TimeoutError';
    const response = problemResponse(error);
    expect(response.statusCode).toBe(503);
    expect(bodyOf(response).type).toBe(problemType('timeout'));
    expect(response.headers['retry-after']).toBe('1');
    expect(response.body).not.toContain('secrets');
  });

  it('answers a plain Error with an opaque 500 that leaks neither its message, stack nor cause', () => {
    const cause = new Error('cause: password=cause-hunter2');
    const error = new Error('connect to postgres://admin:hunter2@10.0.0.7/prod failed', { cause });
    const stack = error.stack ?? '';
    expect(stack).not.toBe('');
    const response = problemResponse(error, { requestId: 'req-2' });
    expect(response.statusCode).toBe(500);
    expect(response.headers['content-type']).toBe('application/problem+json');
    for (const secret of ['hunter2', 'postgres://', '10.0.0.7', 'problem.test', 'at ', error.message]) {
      expect(response.body).not.toContain(secret);
    }
    expect(response.body).not.toContain(stack.split('\n')[1]?.trim() ?? 'no stack line');
    expect(bodyOf(response)).toEqual({
      type: 'https://data-service.dev/problems/internal',
      title: 'Internal server error',
      status: 500,
      detail: 'An unexpected error occurred. It has been logged.',
      request_id: 'req-2',
    });
  });

  it.each([
    ['a string', 'secret string hunter2'],
    ['an object', { message: 'hunter2', stack: 'hunter2' }],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'hunter2')")],
    ['undefined', undefined],
    ['null', null],
  ])('answers %s thrown with an opaque 500', (_, thrown) => {
    const response = problemResponse(thrown);
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('hunter2');
    expect(bodyOf(response).type).toBe(problemType('internal'));
  });
});
