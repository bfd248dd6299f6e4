import { describe, expect, it } from '@jest/globals';
import { InvalidParameterError } from '#lib/errors';
import { DEFAULT_PAGE_LIMIT, type ListParameters, MAX_PAGE_LIMIT, parseListParameters } from '#lib/records';

function rejectionOf(parameters: ListParameters): InvalidParameterError {
  try {
    parseListParameters(parameters);
  } catch (error) {
    if (error instanceof InvalidParameterError) return error;
    throw error;
  }
  throw new Error(`expected an InvalidParameterError for ${JSON.stringify(parameters)}`);
}

const pointersOf = (parameters: ListParameters): string[] =>
  rejectionOf(parameters)
    .issues.map((issue) => issue.pointer)
    .sort();

describe('parseListParameters', () => {
  it('defaults to no filter, the default limit and no cursor', () => {
    expect(DEFAULT_PAGE_LIMIT).toBe(100);
    expect(MAX_PAGE_LIMIT).toBe(1000);
    expect(parseListParameters({})).toEqual({ filter: {}, limit: 100, cursor: undefined });
  });

  it('returns every valid parameter, with from and to as UTC text', () => {
    const parsed = parseListParameters({
      source: 'sensor-1',
      type: 'a.b_c:d/e',
      from: '2026-03-01t00:00:00z',
      to: '2026-03-02T00:00:00+01:00',
      limit: '25',
      cursor: 'opaque',
    });
    expect(parsed).toEqual({
      filter: {
        source: 'sensor-1',
        type: 'a.b_c:d/e',
        from: '2026-03-01T00:00:00.000Z',
        to: '2026-03-01T23:00:00.000Z',
      },
      limit: 25,
      cursor: 'opaque',
    });
    // Absent filters are absent keys, not undefined values.
    expect(Object.keys(parseListParameters({ source: 's' }).filter)).toEqual(['source']);
  });

  it.each([
    ['1', 1],
    ['1000', 1000],
    ['0007', 7],
  ])('accepts the limit %j', (limit, expected) => {
    expect(parseListParameters({ limit }).limit).toBe(expected);
  });

  it.each(['0', '-1', '1001', 'abc', '1.5', '', ' 5', '+5', '1e2', '0x10', '99999999', '５'])(
    'refuses the limit %j naming /limit',
    (limit) => {
      const error = rejectionOf({ limit });
      expect(error.code).toBe('invalid-parameter');
      expect(error.issues).toEqual([{ pointer: '/limit', detail: 'must be an integer from 1 to 1000' }]);
    },
  );

  it('refuses from after to, naming /from, and accepts from equal to to across offsets', () => {
    expect(pointersOf({ from: '2026-03-02T00:00:00Z', to: '2026-03-01T00:00:00Z' })).toEqual(['/from']);
    expect(pointersOf({ from: '2026-03-01T00:00:00.001Z', to: '2026-03-01T01:00:00+01:00' })).toEqual(['/from']);
    expect(parseListParameters({ from: '2026-03-01T00:00:00Z', to: '2026-03-01T01:00:00+01:00' }).filter).toEqual({
      from: '2026-03-01T00:00:00.000Z',
      to: '2026-03-01T00:00:00.000Z',
    });
    expect(parseListParameters({ from: '2026-03-01T00:00:00.123456+00:00' }).filter.from).toBe(
      '2026-03-01T00:00:00.123456Z',
    );
  });

  it.each([
    '2026-02-30T00:00:00Z',
    '2026-03-01',
    '2026-03-01T00:00:00',
    'yesterday',
    '',
    '0000-06-01T00:00:00Z',
    '0001-01-01T00:00:00+00:01',
    '9999-12-31T23:59:59-00:01',
  ])('refuses the instant %j in from and to', (instant) => {
    expect(pointersOf({ from: instant })).toEqual(['/from']);
    expect(pointersOf({ to: instant })).toEqual(['/to']);
  });

  it('refuses unknown parameters, each by name', () => {
    expect(pointersOf({ offset: '10' })).toEqual(['/offset']);
    expect(pointersOf({ Source: 's', page: '2' })).toEqual(['/Source', '/page']);
  });

  it.each(['', 'a b', 'caf\u00e9', 'a,b', 'a?b', 'x'.repeat(129), '\u0000'])(
    'refuses the source and type %j',
    (name) => {
      expect(pointersOf({ source: name })).toEqual(['/source']);
      expect(pointersOf({ type: name })).toEqual(['/type']);
    },
  );

  it('accepts a name of 128 characters', () => {
    expect(parseListParameters({ source: 'x'.repeat(128) }).filter.source).toHaveLength(128);
  });

  it('reports every bad parameter together', () => {
    const error = rejectionOf({
      source: 'bad source',
      type: '',
      from: '2026-03-03T00:00:00Z',
      to: '2026-03-01T00:00:00Z',
      limit: '0',
      sort: 'asc',
    });
    expect(error.issues.map((issue) => issue.pointer).sort()).toEqual(['/from', '/limit', '/sort', '/source', '/type']);
    expect(error.message).toMatch(/and 4 more problems/);
    expect(pointersOf({ from: 'x', to: 'y', limit: 'z' })).toEqual(['/from', '/limit', '/to']);
  });
});
