import { describe, expect, it, jest } from '@jest/globals';
import { AppError } from '#lib/errors';
import {
  API_METHODS,
  createRouter,
  type HttpContext,
  type HttpEvent,
  type HttpResponse,
  problemResponse,
  type RouteHandler,
} from '#lib/http';

const context = {} as HttpContext;

function event(method: string, rawPath: string): HttpEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: '',
    headers: {},
    requestContext: {
      accountId: 'test',
      apiId: 'test',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'jest' },
      requestId: 'req',
      routeKey: '$default',
      stage: '$default',
      time: '2026-03-15T12:00:00.000Z',
      timeEpoch: 0,
    },
    isBase64Encoded: false,
  };
}

const answer = (name: string): RouteHandler => {
  return async (_event, params) => ({ statusCode: 200, headers: {}, body: JSON.stringify({ name, params }) });
};

/** The query function's routes: the ingress sends POST /data to the ingest function. */
const queryRouter = createRouter(
  [
    { method: 'GET', path: '/data', handler: answer('list') },
    { method: 'GET', path: '/data/{id}', handler: answer('get') },
    { method: 'GET', path: '/openapi.json', handler: answer('openapi') },
  ],
  API_METHODS,
);
/** The ingest function's routes. */
const ingestRouter = createRouter(
  [
    { method: 'POST', path: '/data', handler: answer('ingest') },
    { method: 'GET', path: '/openapi.json', handler: answer('openapi') },
  ],
  API_METHODS,
);

async function thrownBy(promise: Promise<HttpResponse>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected the router to throw an AppError');
}

const bodyOf = (response: HttpResponse) => JSON.parse(response.body) as { name: string; params: unknown };

describe('createRouter', () => {
  it('describes the public API methods per path', () => {
    expect(API_METHODS).toEqual({ '/data': ['GET', 'POST'], '/data/{id}': ['GET'], '/openapi.json': ['GET'] });
  });

  it('dispatches on method and path and passes decoded path parameters', async () => {
    expect(bodyOf(await queryRouter(event('GET', '/data'), context))).toEqual({ name: 'list', params: {} });
    expect(bodyOf(await queryRouter(event('GET', '/data/0190a6e4-1c2b'), context))).toEqual({
      name: 'get',
      params: { id: '0190a6e4-1c2b' },
    });
    expect(bodyOf(await queryRouter(event('GET', '/data/a%20b%2Fc%C3%A9'), context)).params).toEqual({ id: 'a b/cé' });
    expect(bodyOf(await ingestRouter(event('POST', '/data'), context)).name).toBe('ingest');
    expect(bodyOf(await queryRouter(event('get', '/data'), context)).name).toBe('list');
  });

  it('hands the event and context to the handler', async () => {
    const handler = jest.fn<RouteHandler>(async () => ({ statusCode: 204, headers: {}, body: '' }));
    const router = createRouter([{ method: 'GET', path: '/data/{id}', handler }]);
    const request = event('GET', '/data/x');
    await router(request, context);
    expect(handler).toHaveBeenCalledWith(request, { id: 'x' }, context);
  });

  it('runs the GET handler for HEAD', async () => {
    const response = await queryRouter(event('HEAD', '/data/abc'), context);
    expect(bodyOf(response)).toEqual({ name: 'get', params: { id: 'abc' } });
  });

  it.each(['/', '/nope', '/data/a/b', '/data/', '/dat', '/data.json', '/openapiXjson', '/DATA', '/data?x=1'])(
    'answers %s with route-not-found',
    async (path) => {
      const error = await thrownBy(queryRouter(event('GET', path), context));
      expect(error.code).toBe('route-not-found');
      expect(problemResponse(error).statusCode).toBe(404);
    },
  );

  it('answers a method the whole API does not serve with 405 and the API-wide Allow list', async () => {
    const postOnQuery = await thrownBy(queryRouter(event('POST', '/data'), context));
    expect(postOnQuery.code).toBe('method-not-allowed');
    expect(postOnQuery.allow).toEqual(['GET', 'HEAD', 'POST']);

    const deleteOnQuery = await thrownBy(queryRouter(event('DELETE', '/data/abc'), context));
    expect(deleteOnQuery.allow).toEqual(['GET', 'HEAD']);

    // The ingest function knows GET /data/{id} only from API_METHODS, and still reports it.
    const getOnIngest = await thrownBy(ingestRouter(event('PUT', '/data/abc'), context));
    expect(getOnIngest.allow).toEqual(['GET', 'HEAD']);
    const putOnIngest = await thrownBy(ingestRouter(event('PUT', '/data'), context));
    expect(putOnIngest.allow).toEqual(['GET', 'HEAD', 'POST']);

    const response = problemResponse(putOnIngest);
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD, POST');
  });

  it('derives Allow from API_METHODS, not a fixed list', async () => {
    const router = createRouter([{ method: 'POST', path: '/things', handler: answer('x') }], {
      '/things': ['DELETE', 'POST'],
    });
    expect((await thrownBy(router(event('GET', '/things'), context))).allow).toEqual(['POST', 'DELETE']);
    expect((await thrownBy(createRouter([])(event('GET', '/data'), context))).code).toBe('route-not-found');
  });

  it('answers OPTIONS with 204 and Allow', async () => {
    expect(await queryRouter(event('OPTIONS', '/data'), context)).toEqual({
      statusCode: 204,
      headers: { allow: 'GET, HEAD, POST' },
      body: '',
    });
    expect((await ingestRouter(event('OPTIONS', '/data/abc'), context)).headers.allow).toBe('GET, HEAD');
    expect((await thrownBy(queryRouter(event('OPTIONS', '/nope'), context))).code).toBe('route-not-found');
  });

  it.each(['%', '%E0%A4%A', '%zz', 'a%2', '%C3'])(
    'refuses the bad percent-encoding %s in a path parameter',
    async (id) => {
      const error = await thrownBy(queryRouter(event('GET', `/data/${id}`), context));
      expect(error.code).toBe('invalid-parameter');
      expect(error.issues).toEqual([{ pointer: '/id', detail: 'is not valid percent-encoding' }]);
      expect(problemResponse(error).statusCode).toBe(400);
    },
  );

  it('truncates a long path in its messages', async () => {
    const long = `/nope/${'x'.repeat(500)}`;
    expect((await thrownBy(queryRouter(event('GET', long), context))).message.length).toBeLessThan(200);
    const error = await thrownBy(queryRouter(event('GET', `/data/%${'x'.repeat(500)}`), context));
    expect(error.message.length).toBeLessThan(200);
  });
});
