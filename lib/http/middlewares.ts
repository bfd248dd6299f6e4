import middy, { type MiddlewareObj } from '@middy/core';
import type { Logger } from '#lib/observability';
import { type CorsOptions, cors, NO_CORS } from './cors.ts';
import { problemResponse, toAppError } from './problem.ts';
import type { FunctionContext, HttpRequest, HttpResponse } from './request.ts';

type HttpMiddleware = MiddlewareObj<HttpRequest, HttpResponse, Error, FunctionContext>;

/** Maps every error a handler throws to problem+json, in one place; logs 5xx with their cause, never sends it. */
export function problemErrors(logger: Logger): HttpMiddleware {
  return {
    onError: (request) => {
      const error = toAppError(request.error);
      const { requestId, path } = request.event;
      const response = problemResponse(error, { requestId, instance: path });
      if (response.statusCode >= 500) {
        logger.error({ request_id: requestId, code: error.code, err: error.cause ?? error }, error.message);
      }
      request.response = response;
    },
  };
}

/**
 * A function's middy handler around its router, with the middleware every function has, in the one order that is
 * right: onError runs last-used first, so the problem is rendered, then CORS decorates it like any answer.
 */
export function apiHandler(
  router: (request: HttpRequest) => Promise<HttpResponse>,
  { logger, cors: corsOptions = NO_CORS }: { readonly logger: Logger; readonly cors?: CorsOptions | undefined },
) {
  // No early-timeout timer per request: the server's request timeout already bounds every request.
  return middy<HttpRequest, HttpResponse, Error, FunctionContext>({ timeoutEarlyInMillis: 0 })
    .use(cors(corsOptions))
    .use(problemErrors(logger))
    .handler(router);
}
