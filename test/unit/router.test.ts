import { describe, expect, it, jest } from '@jest/globals';
import { API_ROUTES, publicTargetOf, routesOf } from '#lib/api';
import { AppError } from '#lib/errors';
import {
  type BoundRoute,
  createRouter,
  type HttpRequest,
  type HttpResponse,
  problemResponse,
  type RouteHandler,
} from '#lib/http';

function event(method: string, path: string): HttpRequest {
  return {
    method,
    path,
    rawQuery: '',
    headers: {},
    body: undefined,
    requestId: 'req',
    route: undefined,
    params: {},
    signal: new AbortController().signal,
  };
}

const answer =
  (name: string): RouteHandler =>
  async (request) => ({ statusCode: 200, headers: {}, body: JSON.stringify({ name, params: request.params }) });

/** A function's routes from the API table, each answering its operation id. */
const bound = (fn: 'ingest' | 'query'): BoundRoute[] =>
  routesOf(fn).map((r) => ({ method: r.method, path: r.path, handler: answer(r.operationId) }));
const queryRouter = createRouter(bound('query'), API_ROUTES);
const ingestRouter = createRouter(bound('ingest'), API_ROUTES);

async function thrownBy(promise: Promise<HttpResponse>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected the router to throw an AppError');
}

const bodyOf = (response: HttpResponse) => JSON.parse(String(response.body)) as { name: string; params: unknown };

describe('createRouter', () => {
  it('serves each route of the API table on the function the table names (the document on both)', () => {
    expect(routesOf('ingest').map((r) => r.operationId)).toEqual(['ingestRecords', 'openApi']);
    expect(routesOf('query').map((r) => r.operationId)).toEqual([
      'listRecords',
      'exportRecords',
      'getRecord',
      'openApi',
      'apiReference',
      'apiReferenceAsset',
    ]);
    expect(publicTargetOf('GET', '/docs/swagger-ui.css')).toBe('query');
    expect(publicTargetOf('POST', '/data')).toBe('ingest');
    expect(publicTargetOf('GET', '/data')).toBe('query');
    expect(publicTargetOf('HEAD', '/data/x')).toBe('query');
    expect(publicTargetOf('OPTIONS', '/data')).toBe('ingest');
    expect(publicTargetOf('GET', '/nope')).toBe('query');
  });

  it('dispatches on method and path and passes decoded path parameters', async () => {
    expect(bodyOf(await queryRouter(event('GET', '/data')))).toEqual({ name: 'listRecords', params: {} });
    expect(bodyOf(await queryRouter(event('GET', '/data/0190a6e4-1c2b')))).toEqual({
      name: 'getRecord',
      params: { id: '0190a6e4-1c2b' },
    });
    expect(bodyOf(await queryRouter(event('GET', '/data/a%20b%2Fc%C3%A9'))).params).toEqual({ id: 'a b/cé' });
    // The export's fixed path is tried before the id template it also matches.
    expect(bodyOf(await queryRouter(event('GET', '/data/export')))).toEqual({ name: 'exportRecords', params: {} });
    expect((await thrownBy(queryRouter(event('POST', '/data/export')))).allow).toEqual(['GET', 'HEAD']);
    expect(bodyOf(await ingestRouter(event('POST', '/data'))).name).toBe('ingestRecords');
  });

  it('hands the request to the handler with its params and route template set', async () => {
    const handler = jest.fn<RouteHandler>(async () => ({ statusCode: 204, headers: {}, body: '' }));
    const router = createRouter([{ method: 'GET', path: '/data/{id}', handler }]);
    const request = event('GET', '/data/x');
    await router(request);
    expect(handler).toHaveBeenCalledWith(request);
    expect(request.params).toEqual({ id: 'x' });
    expect(request.route).toBe('GET /data/{id}');
  });

  it('runs the GET handler for HEAD', async () => {
    const response = await queryRouter(event('HEAD', '/data/abc'));
    expect(bodyOf(response)).toEqual({ name: 'getRecord', params: { id: 'abc' } });
  });

  it.each(['/', '/nope', '/data/a/b', '/data/', '/dat', '/data.json', '/openapiXjson', '/DATA', '/data?x=1'])(
    'answers %s with route-not-found',
    async (path) => {
      const error = await thrownBy(queryRouter(event('GET', path)));
      expect(error.code).toBe('route-not-found');
      expect(problemResponse(error).statusCode).toBe(404);
    },
  );

  it('answers a method the whole API does not serve with 405 and the API-wide Allow list', async () => {
    const postOnQuery = await thrownBy(queryRouter(event('POST', '/data')));
    expect(postOnQuery.code).toBe('method-not-allowed');
    expect(postOnQuery.allow).toEqual(['GET', 'HEAD', 'POST']);

    const deleteOnQuery = await thrownBy(queryRouter(event('DELETE', '/data/abc')));
    expect(deleteOnQuery.allow).toEqual(['GET', 'HEAD']);

    // The ingest function knows GET /data/{id} only from the API table, and still reports it.
    const getOnIngest = await thrownBy(ingestRouter(event('PUT', '/data/abc')));
    expect(getOnIngest.allow).toEqual(['GET', 'HEAD']);
    const putOnIngest = await thrownBy(ingestRouter(event('PUT', '/data')));
    expect(putOnIngest.allow).toEqual(['GET', 'HEAD', 'POST']);

    const response = problemResponse(putOnIngest);
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD, POST');
  });

  it('derives Allow from the API it is given, not a fixed list', async () => {
    const router = createRouter(
      [{ method: 'POST', path: '/things', handler: answer('x') }],
      [
        { method: 'DELETE', path: '/things' },
        { method: 'POST', path: '/things' },
      ],
    );
    expect((await thrownBy(router(event('GET', '/things')))).allow).toEqual(['POST', 'DELETE']);
    expect((await thrownBy(createRouter([])(event('GET', '/data')))).code).toBe('route-not-found');
  });

  it('answers OPTIONS with 204 and Allow', async () => {
    expect(await queryRouter(event('OPTIONS', '/data'))).toEqual({
      statusCode: 204,
      headers: { allow: 'GET, HEAD, POST' },
      body: '',
    });
    expect((await ingestRouter(event('OPTIONS', '/data/abc'))).headers.allow).toBe('GET, HEAD');
    expect((await thrownBy(queryRouter(event('OPTIONS', '/nope')))).code).toBe('route-not-found');
  });

  it.each(['%', '%E0%A4%A', '%zz', 'a%2', '%C3'])(
    'refuses the bad percent-encoding %s in a path parameter',
    async (id) => {
      const error = await thrownBy(queryRouter(event('GET', `/data/${id}`)));
      expect(error.code).toBe('invalid-parameter');
      expect(error.issues).toEqual([{ pointer: '/id', detail: 'is not valid percent-encoding' }]);
      expect(problemResponse(error).statusCode).toBe(400);
    },
  );

  it('truncates a long path in its messages', async () => {
    const long = `/nope/${'x'.repeat(500)}`;
    expect((await thrownBy(queryRouter(event('GET', long)))).message.length).toBeLessThan(200);
    const error = await thrownBy(queryRouter(event('GET', `/data/%${'x'.repeat(500)}`)));
    expect(error.message.length).toBeLessThan(200);
  });
});
