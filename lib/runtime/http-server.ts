/**
 * The HTTP edge of a function on node:http, as Knative's runtime contract asks: bytes in, one decoded request
 * to the middy handler, its answer out. The body is capped while it streams in, the request id is resolved
 * once, probes and /metrics answer without touching the handler, and `drain()` is the SIGTERM half of
 * invariant 5. Every problem body, even the ones written straight to a socket, comes from `problemResponse`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppError, type ErrorCode } from '#lib/errors';
import {
  type FunctionContext,
  type HttpHandler,
  type HttpRequest,
  type HttpResponse,
  header,
  isStreamBody,
  problemResponse,
  requestIdOf,
  type StreamBody,
} from '#lib/http';
import { activeTraceIds, type Logger, requestTraceContext, withRequestSpan } from '#lib/observability';
import type { AccessLog, RequestSample } from './access-log.ts';
import { compressResponse } from './compress-response.ts';
import { createProbes } from './probes.ts';
import { bodyEncodingOf, readBody } from './read-body.ts';

export interface RuntimeServerOptions {
  readonly handler: HttpHandler;
  readonly logger: Logger;
  readonly functionName: string;
  readonly bodyLimitBytes: number;
  /** Answers at least this large (and without an ETag) are compressed for clients that accept it; 0: never. */
  readonly compressMinBytes?: number;
  readonly keepAliveTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Resolves true when dependencies needed to serve are reachable (PostgreSQL). */
  readonly readiness?: () => Promise<boolean>;
  /** Called once per finished request (metrics). */
  readonly observe?: (sample: RequestSample) => void;
  /** One line per finished request. */
  readonly accessLog?: AccessLog | undefined;
  /** Serves `GET /metrics` (Prometheus text) when given. */
  readonly metrics?: { readonly contentType: string; render(): Promise<string> };
}

export interface RuntimeServer {
  readonly server: Server;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Not ready from now on; stop accepting; resolve when every in-flight request finished or `timeoutMs` passed. */
  drain(timeoutMs: number): Promise<{ completed: boolean; abandoned: number }>;
  readonly inFlight: () => number;
}

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);
const LINGER_MS = 2_000;
const NO_BODY_STATUS = new Set([204, 304]);

/** Creates (but does not start) the HTTP server of one function. */
export function createRuntimeServer(options: RuntimeServerOptions): RuntimeServer {
  const { handler, logger, bodyLimitBytes, observe, accessLog } = options;
  const compressMinBytes = options.compressMinBytes ?? 0;
  const probes = createProbes(options.readiness);
  // middy's types ask for a Lambda context; one frozen object per process stands for it (nothing reads it).
  const context = Object.freeze({ functionName: options.functionName }) as FunctionContext;
  let draining = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  const server = createServer(
    { requestTimeout: options.requestTimeoutMs, headersTimeout: options.headersTimeoutMs },
    (req, res) => {
      inFlight++;
      const started = performance.now();
      const request: HttpRequest = edgeRequest(req, res);
      // The body bytes of a streamed answer, counted as they are written (it has no Content-Length).
      const streamed = { bytes: 0 };
      let trace: RequestSample['trace'];
      res.once('close', () => {
        inFlight--;
        if (observe !== undefined || accessLog !== undefined) {
          const sample: RequestSample = {
            route: request.route ?? 'unmatched',
            method: request.method,
            status: res.statusCode,
            durationSeconds: (performance.now() - started) / 1000,
            bytes: Number(res.getHeader('content-length') ?? streamed.bytes),
            requestId: request.requestId,
            trace,
          };
          observe?.(sample);
          accessLog?.(sample);
        }
        if (inFlight === 0) onIdle?.();
      });
      serve(req, res, request, streamed, (ids) => {
        trace = ids;
      }).catch((error: unknown) => {
        logger.error({ err: error, request_id: request.requestId }, 'runtime failed to serve a request');
        if (!res.headersSent) send(res, request, problemResponse(error, { requestId: request.requestId }));
        else res.destroy();
      });
    },
  );
  server.keepAliveTimeout = options.keepAliveTimeoutMs;
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const code: ErrorCode =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? 'headers-too-large'
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'request-timeout'
          : 'malformed-request';
    const problem = problemResponse(new AppError(code, 'The HTTP request could not be read.'));
    socket.end(
      `HTTP/1.1 ${problem.statusCode} ${code}\r\n${Object.entries(problem.headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('')}content-length: ${Buffer.byteLength(problem.body)}\r\nconnection: close\r\n\r\n${problem.body}`,
    );
  });

  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    request: HttpRequest & { body: Buffer | undefined },
    streamed: { bytes: number },
    traced: (ids: RequestSample['trace']) => void,
  ): Promise<void> {
    const { path } = request;
    if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
      request.route = path;
      if (path === '/healthz') return send(res, request, probes.health());
      if (path === '/readyz') return send(res, request, await probes.ready());
      if (options.metrics) {
        const text = await options.metrics.render();
        return send(res, request, {
          statusCode: 200,
          headers: { 'content-type': options.metrics.contentType },
          body: text,
        });
      }
      request.route = undefined;
    }
    if (
      !BODYLESS.has(request.method) ||
      req.headers['content-length'] !== undefined ||
      req.headers['transfer-encoding'] !== undefined
    ) {
      // Refused before it is read (an unsupported encoding), while it is read (past the cap, as sent or as
      // decoded) or once read (not valid in its encoding): the rest is drained, never parsed as a next request.
      const refuse = (error: AppError) =>
        rejectBody(req, res, request, problemResponse(error, { requestId: request.requestId, instance: path }));
      let body: Buffer | undefined;
      try {
        const encoding = bodyEncodingOf(header(request, 'content-encoding'));
        body = await readBody(req, bodyLimitBytes, encoding);
        if (body === undefined) {
          const decoded = encoding === undefined ? '' : ' (sent or decoded)';
          return refuse(
            new AppError('payload-too-large', `The body exceeds the limit of ${bodyLimitBytes} bytes${decoded}.`),
          );
        }
      } catch (error) {
        if (error instanceof AppError) return refuse(error);
        throw error;
      }
      request.body = body;
    }
    const parent = requestTraceContext(req.headers);
    const response = await withRequestSpan(
      `${request.method} ${path}`,
      { 'http.request.method': request.method, 'url.path': path, 'http.request_id': request.requestId },
      parent,
      async (span) => {
        if (span !== undefined) traced(activeTraceIds());
        const answer = await handler(request, context);
        if (span !== undefined) {
          const route = request.route ?? 'unmatched';
          span.updateName(request.route === undefined ? `${request.method} unmatched` : route);
          span.setAttributes({ 'http.route': route, 'http.response.status_code': answer.statusCode });
        }
        return answer;
      },
    );
    const answer = await compressResponse(response, header(request, 'accept-encoding'), compressMinBytes);
    const { body } = answer;
    if (isStreamBody(body)) return stream(res, request, answer, body, streamed);
    send(res, request, answer);
  }

  function send(res: ServerResponse, request: HttpRequest, response: HttpResponse): void {
    // A text body goes out as text: Node then writes the head and the body in one write, with no Buffer copy.
    const payload = response.body as string | Buffer;
    const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    res.writeHead(response.statusCode, headersOf(request, response, length));
    res.end(request.method === 'HEAD' || NO_BODY_STATUS.has(response.statusCode) ? undefined : payload);
  }

  // One headers object per response: the request id, echoed on every answer, joins it here.
  function headersOf(request: HttpRequest, response: HttpResponse, length?: number): Record<string, string | number> {
    const headers: Record<string, string | number> = { ...response.headers, 'x-request-id': request.requestId };
    if (length !== undefined) headers['content-length'] = length;
    // While draining, tell keep-alive clients to reconnect elsewhere so that the socket closes after this reply.
    if (draining) headers.connection = 'close';
    return headers;
  }

  /**
   * A streamed body, chunked (no Content-Length), with backpressure: the next chunk is asked for only once the
   * socket took this one ('drain'). A client that leaves stops the iteration (returning the body's iterator, so
   * its producer stops); a body that fails closes the connection without the final chunk, so the client sees a
   * truncated chunked body instead of a clean end it would take for the whole answer.
   */
  async function stream(
    res: ServerResponse,
    request: HttpRequest,
    response: HttpResponse,
    body: StreamBody,
    streamed: { bytes: number },
  ): Promise<void> {
    res.writeHead(response.statusCode, headersOf(request, response));
    if (request.method === 'HEAD' || NO_BODY_STATUS.has(response.statusCode)) {
      res.end();
      await body[Symbol.asyncIterator]().return?.();
      return;
    }
    try {
      for await (const chunk of body) {
        if (res.destroyed) break;
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        streamed.bytes += bytes.length;
        if (!res.write(bytes) && !(await drained(res))) break;
      }
    } catch (error) {
      logger.error(
        { err: error, request_id: request.requestId, route: request.route, bytes: streamed.bytes },
        'response stream failed: connection closed without the final chunk',
      );
      // The status is out, so the only honest end left is an abnormal one: the socket is ended without the final
      // chunk once what was written is flushed (the client then holds every complete line it was sent, and sees
      // the body cut), and destroyed if the flush takes longer than LINGER_MS. Destroying it at once would drop
      // writes still corked in this tick, and the client would lose what it could have resumed from.
      const socket = res.socket;
      if (socket === null || socket.destroyed) return;
      socket.end();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
      return;
    }
    if (!res.destroyed) res.end();
  }

  /**
   * Answers 413 as soon as the cap is passed, without buffering the rest. A `Connection: close` reply would make
   * Node destroy the socket at once, and a client still writing its body (many write it all before reading)
   * would get a reset instead of the 413; so the rest is drained unbuffered, for `LINGER_MS` at most, after
   * which the socket is destroyed: a slow sender cannot hold the connection.
   */
  function rejectBody(req: IncomingMessage, res: ServerResponse, request: HttpRequest, response: HttpResponse): void {
    send(res, request, response);
    req.resume();
    res.once('finish', () => {
      if (req.complete) return;
      const linger = setTimeout(() => req.socket.destroy(), LINGER_MS);
      linger.unref();
      req.once('end', () => clearTimeout(linger));
    });
  }

  return {
    server,
    inFlight: () => inFlight,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    async drain(timeoutMs) {
      draining = true;
      probes.drain();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const idle = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (onIdle = resolve));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const outcome = await Promise.race([idle.then(() => 'idle' as const), timedOut]);
      clearTimeout(timer);
      const abandoned = inFlight;
      server.closeAllConnections();
      await closed;
      return { completed: outcome === 'idle', abandoned };
    },
  };
}

/** Resolves true when `res` can take more ('drain'), false when it closed first (the client has gone). */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = (writable: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(writable);
    };
    const onDrain = settle(true);
    const onClose = settle(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/** The request as handlers see it, decoded once: method, path, raw query, headers and the request id. */
function edgeRequest(req: IncomingMessage, res: ServerResponse): HttpRequest & { body: Buffer | undefined } {
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  // Made on first use: only a write asks whether its client is still there, the other routes pay nothing.
  let gone: AbortController | undefined;
  return {
    get signal() {
      if (gone === undefined) {
        const controller = new AbortController();
        gone = controller;
        const left = () => controller.abort(new AppError('request-timeout', 'The client closed the connection.'));
        if (res.destroyed && !res.writableFinished) left();
        else res.once('close', () => res.writableFinished || left());
      }
      return gone.signal;
    },
    method: req.method ?? 'GET',
    path: queryAt === -1 ? url : url.slice(0, queryAt),
    rawQuery: queryAt === -1 ? '' : url.slice(queryAt + 1),
    headers: req.headers,
    body: undefined,
    requestId: requestIdOf(req.headers['x-request-id'], randomUUID),
    route: undefined,
    params: {},
  };
}
