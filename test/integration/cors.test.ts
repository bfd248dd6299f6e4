/**
 * CORS as a browser checks it (Fetch standard §3.2): preflights and real requests from an allowed origin get what
 * a page needs to send and read; another origin gets no CORS header at all. Over real HTTP to both functions.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startTestApp, type TestApp, uniqueSource, withToken } from '../support/app.ts';

const ALLOWED = 'https://app.example.com';
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ env: { CORS_ALLOWED_ORIGINS: `${ALLOWED},http://127.0.0.1:3000` } });
});
afterAll(async () => {
  await app.close();
});

const preflight = (url: string, origin: string, method: string, headers: string) =>
  fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });

describe('CORS', () => {
  it('answers a preflight from an allowed origin with the methods, headers and max age a browser checks', async () => {
    const response = await preflight(
      `${app.ingestUrl}/data`,
      ALLOWED,
      'POST',
      'authorization,content-type,idempotency-key',
    );
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    const allowed = response.headers.get('access-control-allow-headers')?.split(', ') ?? [];
    expect(allowed).toEqual(
      expect.arrayContaining(['authorization', 'content-type', 'idempotency-key', 'content-encoding']),
    );
    expect(response.headers.get('access-control-max-age')).toBe('600');
    expect(response.headers.get('vary')).toContain('Origin');
  });

  it('lets the page read the answer and the headers it needs, errors included', async () => {
    const source = uniqueSource('cors');
    const created = await fetch(`${app.ingestUrl}/data`, {
      method: 'POST',
      headers: await withToken({ origin: ALLOWED, 'content-type': 'application/json' }),
      body: JSON.stringify({ id: randomUUID(), source, type: 't', payload: {} }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    const exposed = created.headers.get('access-control-expose-headers')?.split(', ') ?? [];
    expect(exposed).toEqual(
      expect.arrayContaining([
        'location',
        'etag',
        'link',
        'data-staleness',
        'x-request-id',
        'retry-after',
        'ratelimit',
        'ratelimit-policy',
      ]),
    );
    // A 401 and a 404 are readable too, so the page can tell the user why.
    const refused = await fetch(`${app.queryUrl}/data/${randomUUID()}`, { headers: { origin: ALLOWED } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    const missing = await fetch(`${app.queryUrl}/nowhere`, { headers: { origin: ALLOWED } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    // The query function's own Vary is kept beside Origin.
    const page = await fetch(`${app.queryUrl}/data?source=${source}`, {
      headers: await withToken({ origin: ALLOWED }),
    });
    expect(page.headers.get('vary')).toBe('Authorization, Origin');
  });

  it('gives another origin no CORS header at all, so its browser refuses', async () => {
    for (const response of [
      await preflight(`${app.ingestUrl}/data`, 'https://evil.example', 'POST', 'authorization'),
      await fetch(`${app.queryUrl}/data?source=x`, { headers: await withToken({ origin: 'https://evil.example' }) }),
    ]) {
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      expect(response.headers.get('access-control-allow-headers')).toBeNull();
    }
  });

  it('adds nothing when no origin is configured (the default)', async () => {
    const plain = await startTestApp();
    try {
      const response = await preflight(`${plain.ingestUrl}/data`, ALLOWED, 'POST', 'authorization');
      expect(response.status).toBe(204);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      expect(response.headers.get('vary')).toBeNull();
    } finally {
      await plain.close();
    }
  });
});
