/**
 * CORS in a real browser: a page served from another loopback origin POSTs a record with a bearer token and reads
 * it back, headers included, through both functions; a page on an origin that is not allowed is refused by the
 * browser itself. Chromium from Debian, driven by playwright-core (test/support/browser.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { startTestApp, type TestApp, uniqueSource } from '../support/app.ts';
import { testIssuer } from '../support/auth.ts';
import { describeWithBrowser, launchBrowser } from '../support/browser.ts';

const describeBrowser = describeWithBrowser();

/** A page server on its own port: another origin than the functions'. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>client</title><p>client');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describeBrowser('CORS in Chromium', () => {
  let app: TestApp;
  let browser: Browser;
  let allowed: { server: Server; origin: string };
  let other: { server: Server; origin: string };

  beforeAll(async () => {
    allowed = await pageServer();
    other = await pageServer();
    app = await startTestApp({ env: { CORS_ALLOWED_ORIGINS: allowed.origin } });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    allowed?.server.close();
    other?.server.close();
  });

  /** Runs the client's calls inside a page of `origin`. */
  async function fromPage(origin: string, token: string, source: string) {
    const page = await browser.newPage();
    try {
      await page.goto(`${origin}/`);
      return await page.evaluate(
        async ({ ingest, query, token, source }) => {
          try {
            const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
            const posted = await fetch(`${ingest}/data`, {
              method: 'POST',
              headers: { ...headers, 'idempotency-key': `page-${source}` },
              body: JSON.stringify({ source, type: 'reading', payload: { from: 'browser' } }),
            });
            const location = posted.headers.get('location');
            const read = await fetch(`${query}${location}`, { headers: { authorization: headers.authorization } });
            const body = (await read.json()) as { payload: unknown };
            const refused = await fetch(`${query}${location}`);
            return {
              posted: posted.status,
              location,
              requestId: posted.headers.get('x-request-id'),
              rateLimit: posted.headers.get('ratelimit'),
              read: read.status,
              etag: read.headers.get('etag'),
              payload: body.payload,
              refused: refused.status,
              challenge: refused.headers.get('www-authenticate'),
            };
          } catch (error) {
            return { blocked: String(error) };
          }
        },
        { ingest: app.ingestUrl, query: app.queryUrl, token, source },
      );
    } finally {
      await page.close();
    }
  }

  it('lets a page of an allowed origin write and read, and read the headers and errors it needs', async () => {
    const token = await (await testIssuer()).allAccess('browser');
    const result = await fromPage(allowed.origin, token, uniqueSource('browser'));
    expect(result).toMatchObject({
      posted: 201,
      location: expect.stringMatching(/^\/data\/[0-9a-f-]{36}$/),
      requestId: expect.any(String),
      read: 200,
      etag: expect.stringMatching(/^"/),
      payload: { from: 'browser' },
      refused: 401,
      challenge: 'Bearer realm="data-service"',
    });
  });

  it('has the browser refuse a page of another origin', async () => {
    const token = await (await testIssuer()).allAccess('browser');
    const result = await fromPage(other.origin, token, uniqueSource('browser'));
    expect(result).toEqual({ blocked: expect.stringContaining('Failed to fetch') });
  });
});
