/**
 * The Knative container contract on node:http: requests become API Gateway v2 events for a middy handler,
 * bodies are capped while they stream in, probes answer without touching the handler, and `drain()` implements
 * the SIGTERM half of invariant 5.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppError } from '#lib/errors';
import {
  type HttpContext,
  type HttpEvent,
  type HttpHandler,
  type HttpResponse,
  problemResponse,
  resolveRequestId,
} from '#lib/http';
import { activeTraceIds, extractContext, type Logger, SpanKind, withSpan } from '#lib/observability';

export interface RuntimeServerOptions {
  readonly handler: HttpHandler;
  readonly logger: Logger;
  readonly functionName: string;
  readonly bodyLimitBytes: number;
  readonly keepAliveTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Resolves true when dependencies needed to serve are reachable (PostgreSQL). */
  readonly readiness?: () => Promise<boolean>;
  /** Called once per finished request (metrics); `route` is a template, never a raw path. */
  readonly observe?: (sample: RequestSample) => void;
  /** Serves `GET /metrics` (Prometheus text) when given. */
  readonly metrics?: { readonly contentType: string; render(): Promise<string> };
}

interface Served {
  route: string;
  trace: { trace_id: string; span_id: string } | undefined;
}

export interface RequestSample {
  readonly route: string;
  readonly method: string;
  readonly status: number;
  readonly durationSeconds: number;
  readonly bytes: number;
}

export interface RuntimeServer {
  readonly server: Server;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Not ready from now on; stop accepting; resolve when every in-flight request finished or `timeoutMs` passed. */
  drain(timeoutMs: number): Promise<{ completed: boolean; abandoned: number }>;
  readonly inFlight: () => number;
}

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);
const READINESS_CACHE_MS = 1_000;
const LINGER_MS = 2_000;
// fatal: invalid UTF-8 is reported (the body then travels base64-encoded), never silently replaced.
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Creates (but does not start) the HTTP server of one function. */
export function createRuntimeServer(options: RuntimeServerOptions): RuntimeServer {
  const { handler, logger, bodyLimitBytes } = options;
  let draining = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  let readyCache: { at: number; ready: boolean } | undefined;

  const server = createServer(
    { requestTimeout: options.requestTimeoutMs, headersTimeout: options.headersTimeoutMs },
    (req, res) => {
      inFlight++;
      const started = performance.now();
      const served: Served = { route: 'unmatched', trace: undefined };
      res.on('close', () => {
        inFlight--;
        const seconds = (performance.now() - started) / 1000;
        const bytes = Number(res.getHeader('content-length') ?? 0);
        options.observe?.({
          route: served.route,
          method: req.method ?? 'GET',
          status: res.statusCode,
          durationSeconds: seconds,
          bytes,
        });
        logger.info(
          {
            request_id: res.getHeader('x-request-id'),
            ...served.trace,
            method: req.method,
            route: served.route,
            status: res.statusCode,
            duration_ms: Math.round(seconds * 1_000_000) / 1000,
            bytes,
          },
          'request',
        );
        if (inFlight === 0) onIdle?.();
      });
      serve(req, res, served).catch((error: unknown) => {
        logger.error({ err: error }, 'runtime failed to serve a request');
        if (!res.headersSent) send(res, problemResponse(error), false);
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
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({
      type: 'about:blank',
      title: 'Bad request',
      status,
      detail: 'The HTTP request could not be read.',
    });
    socket.end(
      `HTTP/1.1 ${status} Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  async function ready(): Promise<boolean> {
    if (draining) return false;
    if (!options.readiness) return true;
    const now = Date.now();
    if (readyCache && now - readyCache.at < READINESS_CACHE_MS) return readyCache.ready;
    const isReady = await options.readiness().catch(() => false);
    readyCache = { at: now, ready: isReady };
    return isReady;
  }

  async function serve(req: IncomingMessage, res: ServerResponse, served: Served): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const rawQuery = queryAt === -1 ? '' : url.slice(queryAt + 1);
    const isHead = method === 'HEAD';

    if (path === '/healthz' || path === '/readyz' || path === '/metrics') served.route = path;
    if (path === '/healthz') return send(res, probe(200, 'ok'), isHead);
    if (path === '/metrics' && options.metrics) {
      const text = await options.metrics.render();
      return send(
        res,
        { statusCode: 200, headers: { 'content-type': options.metrics.contentType }, body: text },
        isHead,
      );
    }
    if (path === '/readyz') {
      const isReady = await ready();
      return send(res, probe(isReady ? 200 : 503, draining ? 'draining' : isReady ? 'ready' : 'unavailable'), isHead);
    }

    const requestId = resolveRequestId(firstHeader(req.headers['x-request-id']), randomUUID);
    let body: Buffer | undefined;
    if (
      !BODYLESS.has(method) ||
      req.headers['content-length'] !== undefined ||
      req.headers['transfer-encoding'] !== undefined
    ) {
      body = await readBody(req, bodyLimitBytes);
      if (body === undefined) {
        const tooLarge = new AppError('payload-too-large', `The body exceeds the limit of ${bodyLimitBytes} bytes.`);
        const response = problemResponse(tooLarge, { requestId, instance: path });
        response.headers['x-request-id'] = requestId;
        return rejectBody(req, res, response);
      }
    }
    const event = toEvent(req, method, path, rawQuery, body, requestId);
    const response = await withSpan(
      `${method} ${path}`,
      { 'http.request.method': method, 'url.path': path, 'http.request_id': requestId },
      SpanKind.SERVER,
      async (span) => {
        served.trace = activeTraceIds();
        const answer = await handler(event, lambdaContext(requestId, options.functionName, options.requestTimeoutMs));
        if (event.routeKey !== '$default') served.route = event.routeKey;
        span?.updateName(served.route === 'unmatched' ? `${method} unmatched` : served.route);
        span?.setAttributes({ 'http.route': served.route, 'http.response.status_code': answer.statusCode });
        return answer;
      },
      extractContext(req.headers),
    );
    send(res, response, isHead);
  }

  function send(res: ServerResponse, response: HttpResponse, headOnly: boolean): void {
    const payload = Buffer.from(response.body, response.isBase64Encoded ? 'base64' : 'utf8');
    for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
    res.setHeader('content-length', payload.length);
    // While draining, tell keep-alive clients to reconnect elsewhere so that the socket closes after this reply.
    if (draining) res.setHeader('connection', 'close');
    res.writeHead(response.statusCode);
    res.end(headOnly || response.statusCode === 304 || response.statusCode === 204 ? undefined : payload);
  }

  /**
   * Answers 413 as soon as the cap is passed, without buffering the rest. A `Connection: close` reply would make
   * Node destroy the socket at once, and a client still writing its body (many write it all before reading)
   * would get a reset instead of the 413; so the rest is drained unbuffered, for `LINGER_MS` at most, after
   * which the socket is destroyed: a slow sender cannot hold the connection.
   */
  function rejectBody(req: IncomingMessage, res: ServerResponse, response: HttpResponse): void {
    send(res, response, false);
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

/** Reads the whole body, or resolves undefined as soon as it passes `limit` bytes (declared or streamed). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

function toEvent(
  req: IncomingMessage,
  method: string,
  rawPath: string,
  rawQueryString: string,
  body: Buffer | undefined,
  requestId: string,
): HttpEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const now = Date.now();
  const text = body === undefined ? undefined : decodeUtf8(body);
  const event: HttpEvent = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: 'knative',
      apiId: 'data-service',
      domainName: headers.host ?? 'localhost',
      domainPrefix: (headers.host ?? 'localhost').split('.')[0] ?? 'localhost',
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    isBase64Encoded: text === undefined && body !== undefined,
  };
  if (rawQueryString !== '') event.queryStringParameters = parseQuery(rawQueryString);
  if (body !== undefined) event.body = text ?? body.toString('base64');
  return event;
}

/** API Gateway v2 joins repeated parameters with commas; so do we. */
function parseQuery(rawQueryString: string): Record<string, string> {
  const query = new URLSearchParams(rawQueryString);
  const parameters: Record<string, string> = {};
  for (const key of new Set(query.keys())) parameters[key] = query.getAll(key).join(',');
  return parameters;
}

const firstHeader = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

function decodeUtf8(body: Buffer): string | undefined {
  try {
    return STRICT_UTF8.decode(body);
  } catch {
    return undefined;
  }
}

function lambdaContext(requestId: string, functionName: string, timeoutMs: number): HttpContext {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `knative:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: functionName,
    logStreamName: functionName,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function probe(statusCode: number, status: string): HttpResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify({ status }),
  };
}
