import type { MiddlewareObj } from '@middy/core';
import type { Logger } from '#lib/observability';
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
