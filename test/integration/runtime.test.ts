/**
 * The Knative runtime contract of lib/runtime/http-server.ts, in process, over real loopback HTTP: the streaming
 * body cap, probes, keep-alive above queue-proxy's 90 s, drain (invariant 5) and malformed requests.
 */
import { once } from 'node:events';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { loadConfig } from '#lib/config';
import { type HttpHandler, jsonResponse } from '#lib/http';
import { createSilentLogger } from '#lib/observability';
import { createRuntimeServer, type RuntimeServer, type RuntimeServerOptions } from '#lib/runtime';
import { startTestApp, type TestApp, uniqueSource } from '../support/app.ts';
import { connectOutcome, sleep, withTimeout } from '../support/processes.ts';

const LIMIT = 4096;

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request over node:http; `agent: false` means a fresh connection. */
function request(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string; agent?: Agent | false },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: options.headers ?? {},
        agent: options.agent ?? false,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Writes raw bytes on a fresh connection and collects everything until the server closes it (or `timeoutMs`). */
async function rawExchange(
  port: number,
  data: string,
  timeoutMs = 3_000,
  until: 'close' | 'response' = 'close',
): Promise<{ text: string; ms: number }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const started = performance.now();
  const reading = until === 'close' ? readUntilClose(socket, data) : readOneResponse(socket, data);
  try {
    return await withTimeout(reading, timeoutMs, () => `no ${until} within ${timeoutMs} ms`).then((text) => ({
      text,
      ms: performance.now() - started,
    }));
  } finally {
    socket.destroy();
  }
}

/** Resolves with the first complete response (headers plus Content-Length bytes), whatever the socket does next. */
function readOneResponse(socket: Socket, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const split = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
      if (split !== -1 && length !== undefined && Buffer.byteLength(text.slice(split + 4)) >= Number(length)) {
        resolve(text);
      }
    });
    socket.once('error', reject);
    socket.write(data);
  });
}

function readUntilClose(socket: Socket, data?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.once('end', () => resolve(text));
    socket.once('error', reject);
    if (data !== undefined) socket.write(data);
  });
}

/** Splits a raw HTTP/1.1 response into status, lower-cased headers and body. */
function parseRaw(text: string): Reply {
  const split = text.indexOf('\r\n\r\n');
  const head = split === -1 ? text : text.slice(0, split);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: split === -1 ? '' : text.slice(split + 4) };
}

/** The connect error code for 127.0.0.1:port, or 'connected'. */

const RUNTIME_DEFAULTS = {
  logger: createSilentLogger(),
  functionName: 'runtime-test',
  bodyLimitBytes: LIMIT,
  keepAliveTimeoutMs: 95_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
} as const;

const servers: RuntimeServer[] = [];
/** A runtime server on an ephemeral loopback port; drained (briefly) after each test. */
async function startRuntime(
  handler: HttpHandler,
  extra: Partial<RuntimeServerOptions> = {},
): Promise<{ runtime: RuntimeServer; port: number }> {
  const runtime = createRuntimeServer({ ...RUNTIME_DEFAULTS, handler, ...extra });
  servers.push(runtime);
  const address = await runtime.listen(0, '127.0.0.1');
  return { runtime, port: address.port };
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => (s.server.listening ? s.drain(200) : undefined)));
});

const okHandler: HttpHandler = async (event) => jsonResponse(200, { path: event.path });

describe('body cap', () => {
  let app: TestApp;
  let port: number;
  beforeAll(async () => {
    // The edge is under test here, not access control.
    app = await startTestApp({ bodyLimitBytes: LIMIT, auth: false });
    port = Number(new URL(app.ingestUrl).port);
  });
  afterAll(async () => {
    await app.close();
  });

  /** A valid single-record body of exactly `bytes` bytes. */
  const bodyOf = (bytes: number): string => {
    const base = { source: uniqueSource('cap'), type: 'reading', payload: { pad: '' } };
    const padding = bytes - Buffer.byteLength(JSON.stringify(base));
    const text = JSON.stringify({ ...base, payload: { pad: 'x'.repeat(padding) } });
    expect(Buffer.byteLength(text)).toBe(bytes);
    return text;
  };

  it('answers 413 problem+json to a declared Content-Length over the limit without waiting for the body', async () => {
    const { text, ms } = await rawExchange(
      port,
      `POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`,
      3_000,
      'response',
    );
    const reply = parseRaw(text);
    expect(reply.status).toBe(413);
    expect(reply.headers['content-type']).toBe('application/problem+json');
    // No `Connection: close`: Node would reset the socket under a client still writing its body (see rejectBody).
    expect(JSON.parse(reply.body)).toMatchObject({ status: 413, title: 'Payload too large' });
    expect(ms).toBeLessThan(1_000);
  });

  it('accepts a body of exactly the limit and refuses one byte more', async () => {
    const exact = await request(port, {
      method: 'POST',
      path: '/data',
      headers: { 'content-type': 'application/json' },
      body: bodyOf(LIMIT),
    });
    expect(exact.status).toBe(201);
    const over = await request(port, {
      method: 'POST',
      path: '/data',
      headers: { 'content-type': 'application/json' },
      body: bodyOf(LIMIT + 1),
    });
    expect(over.status).toBe(413);
  });

  it('accepts a chunked body of exactly the limit', async () => {
    const body = bodyOf(LIMIT);
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/data',
          agent: false,
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 1000));
      req.write(body.slice(1000, 3000));
      req.end(body.slice(3000));
    });
    expect(reply.status).toBe(201);
  });

  it('answers 413 to a slowly streamed chunked body as soon as it passes the limit, readable by the client', async () => {
    const chunk = 'x'.repeat(1024);
    const plannedChunks = 40; // 40 KiB over 2 s
    const started = performance.now();
    const outcome = await new Promise<{ reply: Reply; chunksBeforeResponse: number; ms: number; error?: string }>(
      (resolve, reject) => {
        let sent = 0;
        let chunksBeforeResponse = -1;
        let responseAt = 0;
        let clientError: string | undefined;
        let timer: NodeJS.Timeout | undefined;
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/data',
            agent: false,
            headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          },
          (res) => {
            chunksBeforeResponse = sent;
            responseAt = performance.now();
            clearInterval(timer);
            let text = '';
            res.setEncoding('utf8').on('data', (part: string) => {
              text += part;
            });
            res.on('end', () => {
              const result = {
                reply: { status: res.statusCode ?? 0, headers: res.headers, body: text },
                chunksBeforeResponse,
                ms: responseAt - started,
              };
              resolve(clientError === undefined ? result : { ...result, error: clientError });
            });
            res.on('error', (error) => reject(error));
          },
        );
        req.on('error', (error: NodeJS.ErrnoException) => {
          clientError = error.code ?? error.message;
          if (chunksBeforeResponse === -1) {
            clearInterval(timer);
            reject(new Error(`client saw ${clientError} before any response, after ${sent} chunks`));
          }
        });
        req.flushHeaders();
        timer = setInterval(() => {
          if (sent >= plannedChunks) {
            clearInterval(timer);
            req.end();
            return;
          }
          sent++;
          req.write(chunk);
        }, 50);
      },
    );
    expect(outcome.reply.status).toBe(413);
    expect(outcome.reply.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(outcome.reply.body)).toMatchObject({ status: 413 });
    // 4 KiB limit, 1 KiB per 50 ms: the 413 must come after ~5 chunks, long before the 40 planned ones.
    expect(outcome.chunksBeforeResponse).toBeLessThan(10);
    expect(outcome.ms).toBeLessThan(1_000);
  });

  it('lets a client that sends its whole body before reading get the 413 instead of a broken pipe', async () => {
    // Like a client that uploads first and reads afterwards (urllib3-style). rejectBody() promises to keep
    // discarding unread input "for a moment" (2 s) after the 413 so that such a client reads it rather than a reset.
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    let received = '';
    let error: string | undefined;
    socket.on('data', (part: Buffer) => {
      received += part.toString('utf8');
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.pause(); // read nothing while uploading
    try {
      socket.write('POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n');
      socket.write('Transfer-Encoding: chunked\r\n\r\n');
      const piece = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 8 && !socket.destroyed; i++) {
        socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
        await sleep(10); // ~80 ms of upload, well inside the promised 2 s
      }
      socket.resume();
      await sleep(200);
      expect({ status: parseRaw(received).status, error }).toEqual({ status: 413, error: undefined });
    } finally {
      socket.destroy();
    }
  });
});

describe('probes', () => {
  it('answers /healthz 200 {"status":"ok"} without calling the handler', async () => {
    let calls = 0;
    const { port } = await startRuntime(async () => {
      calls++;
      return jsonResponse(200, {});
    });
    const reply = await request(port, { path: '/healthz' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ status: 'ok' });
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(calls).toBe(0);
  });

  it('answers /readyz 200 when the readiness check passes', async () => {
    const { port } = await startRuntime(okHandler, { readiness: async () => true });
    const reply = await request(port, { path: '/readyz' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ status: 'ready' });
  });

  it('answers /readyz 503 when the readiness check fails or throws', async () => {
    const failing = await startRuntime(okHandler, { readiness: async () => false });
    const failed = await request(failing.port, { path: '/readyz' });
    expect(failed.status).toBe(503);
    expect(JSON.parse(failed.body)).toEqual({ status: 'unavailable' });

    const throwing = await startRuntime(okHandler, {
      readiness: async () => {
        throw new Error('connection refused');
      },
    });
    const thrown = await request(throwing.port, { path: '/readyz' });
    expect(thrown.status).toBe(503);
    // /healthz stays 200: liveness must not depend on dependencies.
    expect((await request(throwing.port, { path: '/healthz' })).status).toBe(200);
  });

  it('follows the readiness check once its cached answer expires', async () => {
    let ready = false;
    const { port } = await startRuntime(okHandler, { readiness: async () => ready });
    expect((await request(port, { path: '/readyz' })).status).toBe(503);
    ready = true;
    await sleep(1_100);
    expect((await request(port, { path: '/readyz' })).status).toBe(200);
  });
});

describe('keep-alive', () => {
  it('defaults above queue-proxy 90 s and advertises Keep-Alive: timeout=95', async () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://user@127.0.0.1:5432/any_test', AUTH_MODE: 'none' });
    expect(config.http.keepAliveTimeoutMs).toBe(95_000);
    const { runtime, port } = await startRuntime(okHandler, { keepAliveTimeoutMs: config.http.keepAliveTimeoutMs });
    expect(runtime.server.keepAliveTimeout).toBeGreaterThan(90_000);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(port, { path: '/a', agent });
      expect(first.status).toBe(200);
      expect(first.headers.connection).toBe('keep-alive');
      expect(first.headers['keep-alive']).toBe('timeout=95');
      const second = await request(port, { path: '/b', agent });
      expect(second.headers['keep-alive']).toBe('timeout=95');
    } finally {
      agent.destroy();
    }
  });
});

describe('drain', () => {
  it('turns not-ready, refuses new connections and lets every in-flight request finish with 200', async () => {
    const gate = deferred();
    const allEntered = deferred();
    let entered = 0;
    const { runtime, port } = await startRuntime(
      async (event) => {
        entered++;
        if (entered === 5) allEntered.resolve();
        await gate.promise;
        return jsonResponse(200, { path: event.path });
      },
      { readiness: async () => true },
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    try {
      const requests = Array.from({ length: 5 }, (_, i) => request(port, { path: `/slow/${i}`, agent }));
      await withTimeout(allEntered.promise, 5_000, () => `only ${entered} of 5 requests reached the handler`);
      expect(runtime.inFlight()).toBe(5);

      // A probe whose request line the server has already started to parse: it is not idle, so drain keeps it.
      const probe = connect(port, '127.0.0.1');
      await once(probe, 'connect');
      probe.write('GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      await sleep(100);

      const started = performance.now();
      const drained = runtime.drain(5_000);
      let settled = false;
      void drained.then(() => {
        settled = true;
      });

      expect(await connectOutcome(port)).toBe('ECONNREFUSED');
      const probeReply = parseRaw(
        await withTimeout(readUntilClose(probe, 'Connection: keep-alive\r\n\r\n'), 3_000, () => 'no readyz answer'),
      );
      expect(probeReply.status).toBe(503);
      expect(JSON.parse(probeReply.body)).toEqual({ status: 'draining' });

      await sleep(200);
      expect(settled).toBe(false);
      expect(runtime.inFlight()).toBe(5);

      gate.resolve();
      const replies = await withTimeout(Promise.all(requests), 5_000, () => 'in-flight requests did not finish');
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(replies.map((r) => JSON.parse(r.body).path)).toEqual([
        '/slow/0',
        '/slow/1',
        '/slow/2',
        '/slow/3',
        '/slow/4',
      ]);
      // Keep-alive clients are told to go elsewhere.
      expect(replies.every((r) => r.headers.connection === 'close')).toBe(true);
      await expect(drained).resolves.toEqual({ completed: true, abandoned: 0 });
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(runtime.server.listening).toBe(false);
      probe.destroy();
    } finally {
      gate.resolve();
      agent.destroy();
    }
  });

  it('resolves immediately with nothing in flight', async () => {
    const { runtime } = await startRuntime(okHandler);
    const started = performance.now();
    await expect(runtime.drain(5_000)).resolves.toEqual({ completed: true, abandoned: 0 });
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('gives up after its timeout and reports the requests it abandoned', async () => {
    const never = deferred();
    const allEntered = deferred();
    let entered = 0;
    const { runtime, port } = await startRuntime(async () => {
      entered++;
      if (entered === 3) allEntered.resolve();
      await never.promise;
      return jsonResponse(200, {});
    });
    try {
      const requests = Array.from({ length: 3 }, (_, i) =>
        request(port, { path: `/stuck/${i}` }).then(
          (r) => `status ${r.status}`,
          (e: NodeJS.ErrnoException) => `error ${e.code ?? e.message}`,
        ),
      );
      await withTimeout(allEntered.promise, 5_000, () => `only ${entered} of 3 requests reached the handler`);
      const started = performance.now();
      const outcome = await runtime.drain(300);
      const ms = performance.now() - started;
      expect(outcome).toEqual({ completed: false, abandoned: 3 });
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(ms).toBeLessThan(2_000);
      // Abandoned connections are closed, not left hanging.
      const results = await withTimeout(Promise.all(requests), 2_000, () => 'abandoned requests were left open');
      expect(results.every((r) => r.startsWith('error'))).toBe(true);
      expect(runtime.server.listening).toBe(false);
    } finally {
      never.resolve();
    }
  });
});

describe('malformed HTTP', () => {
  it('answers garbage with 400 problem+json and keeps serving', async () => {
    let calls = 0;
    const { port } = await startRuntime(async (event) => {
      calls++;
      return jsonResponse(200, { path: event.path });
    });
    const { text } = await rawExchange(port, 'THIS IS NOT HTTP\r\n\u0000\u0001\r\n\r\n');
    const reply = parseRaw(text);
    expect(reply.status).toBe(400);
    expect(reply.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(reply.body)).toMatchObject({ status: 400 });
    expect(calls).toBe(0);

    const after = await request(port, { path: '/still-alive' });
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body)).toEqual({ path: '/still-alive' });
  });

  it('answers 431 to oversized headers and keeps serving', async () => {
    const { port } = await startRuntime(okHandler);
    const { text } = await rawExchange(
      port,
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    expect(parseRaw(text).status).toBe(431);
    expect((await request(port, { path: '/' })).status).toBe(200);
  });
});
