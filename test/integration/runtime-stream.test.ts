/**
 * Streamed bodies at the edge (lib/runtime/http-server.ts), over real loopback HTTP: chunked without a length,
 * the next chunk asked for only once the socket took the last, compressed as they stream, a failure mid-stream
 * seen by the client as a truncated body (never a clean end), a client that leaves stops the producer, and the
 * access log still records the answer with its bytes.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { HttpHandler, StreamBody } from '#lib/http';
import { createSilentLogger } from '#lib/observability';
import { createRuntimeServer, type RequestSample, type RuntimeServer } from '#lib/runtime';

let server: RuntimeServer | undefined;
afterEach(async () => {
  await server?.drain(2_000);
  server = undefined;
});

/** A producer of `count` chunks of `size` bytes that records how far it was pulled and whether it was closed. */
function producer(count: number, size: number, failAfter?: number) {
  const state = { pulled: 0, closed: false };
  async function* chunks(): AsyncGenerator<string> {
    try {
      for (let i = 0; i < count; i++) {
        if (failAfter !== undefined && i === failAfter) throw new Error('the store went away');
        state.pulled++;
        yield `${String(i).padStart(8, '0')}${'x'.repeat(size - 9)}\n`;
      }
    } finally {
      state.closed = true;
    }
  }
  return { state, body: chunks() as StreamBody };
}

async function serve(body: () => StreamBody, options: { compressMinBytes?: number } = {}) {
  const samples: RequestSample[] = [];
  const handler: HttpHandler = async (request) => {
    request.route = 'GET /stream';
    return { statusCode: 200, headers: { 'content-type': 'application/x-ndjson' }, body: body() };
  };
  server = createRuntimeServer({
    handler,
    logger: createSilentLogger(),
    functionName: 'test',
    bodyLimitBytes: 1024,
    keepAliveTimeoutMs: 5_000,
    headersTimeoutMs: 5_000,
    requestTimeoutMs: 5_000,
    accessLog: (sample) => samples.push(sample),
    ...options,
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return { port, samples };
}

function get(port: number, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<{ response: IncomingMessage; destroy: () => void }>((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port, path: '/stream', method, headers, agent: false },
      (response) => resolve({ response, destroy: () => request.destroy() }),
    );
    request.on('error', reject);
    request.end();
  });
}

/** Reads the whole body; `complete` is false when the connection ended before the final chunk. */
function readAll(response: IncomingMessage): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    response.on('data', (chunk: Buffer) => parts.push(chunk));
    response.on('error', () => undefined);
    response.on('close', () => resolve({ body: Buffer.concat(parts), complete: response.complete }));
  });
}

const until = async (condition: () => boolean, timeoutMs = 5_000) => {
  for (const began = Date.now(); !condition(); ) {
    if (Date.now() - began > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('streamed bodies', () => {
  it('are sent chunked, without a length, whole, and logged with their bytes', async () => {
    const { state, body } = producer(50, 1_000);
    const { port, samples } = await serve(() => body);
    const { response } = await get(port);
    expect(response.headers['transfer-encoding']).toBe('chunked');
    expect(response.headers['content-length']).toBeUndefined();
    const read = await readAll(response);
    expect(read).toMatchObject({ complete: true });
    expect(read.body.toString().split('\n').filter(Boolean)).toHaveLength(50);
    expect(state).toEqual({ pulled: 50, closed: true });
    await until(() => samples.length === 1);
    expect(samples[0]).toMatchObject({ route: 'GET /stream', status: 200, bytes: 50_000 });
  });

  it('end abnormally when the body fails mid-stream: the client sees a truncated body, not a clean end', async () => {
    const { body } = producer(50, 1_000, 3);
    const { port } = await serve(() => body);
    const { response } = await get(port);
    expect(response.statusCode).toBe(200);
    const read = await readAll(response);
    expect(read.complete).toBe(false);
    expect(read.body.length).toBe(3_000);
  });

  it('ask for the next chunk only once the socket took the last, and stop the producer when the client leaves', async () => {
    const { state, body } = producer(100_000, 64 * 1024);
    const { port } = await serve(() => body);
    const { response, destroy } = await get(port);
    response.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const paused = state.pulled;
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Only what the socket buffers hold (a few MB of 6.5 GB), and no more while nobody reads.
    expect(state.pulled).toBe(paused);
    expect(paused).toBeLessThan(400);
    destroy();
    await until(() => state.closed);
    expect(state.pulled).toBeLessThanOrEqual(paused + 1);
    await until(() => server?.inFlight() === 0);
  });

  it('are compressed as they stream for a client that accepts gzip', async () => {
    const { body } = producer(200, 1_000);
    const { port, samples } = await serve(() => body, { compressMinBytes: 1 });
    const { response } = await get(port, { 'accept-encoding': 'gzip' });
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(response.headers.vary).toBe('Accept-Encoding');
    const read = await readAll(response);
    expect(read.complete).toBe(true);
    expect(gunzipSync(read.body).toString().split('\n').filter(Boolean)).toHaveLength(200);
    await until(() => samples.length === 1);
    expect(samples[0]?.bytes).toBe(read.body.length);
  });

  it('end abnormally when compressed too', async () => {
    const { state, body } = producer(200, 1_000, 100);
    const { port } = await serve(() => body, { compressMinBytes: 1 });
    const { response } = await get(port, { 'accept-encoding': 'gzip' });
    const read = await readAll(response);
    expect(read.complete).toBe(false);
    expect(state.closed).toBe(true);
  });

  it('send no body to HEAD and close the producer unread', async () => {
    const { state, body } = producer(10, 100);
    const { port } = await serve(() => body);
    const { response } = await get(port, {}, 'HEAD');
    expect(response.statusCode).toBe(200);
    expect((await readAll(response)).body.length).toBe(0);
    expect(state.pulled).toBe(0);
  });
});
