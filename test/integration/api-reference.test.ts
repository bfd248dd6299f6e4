/**
 * `GET /docs`: the OpenAPI document rendered by the project's own Swagger UI. Over HTTP: the page, its files and
 * their codings, validators and security headers. In Chromium: the page draws every route of the table, loads
 * nothing from another origin, and a screenshot of it is kept (`.cache/screenshots/api-reference.png`).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { API_ROUTES } from '#lib/api';
import { ROOT } from '../../scripts/processes.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { describeWithBrowser, launchBrowser } from '../support/browser.ts';

const describeBrowser = describeWithBrowser();

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
}, 60_000);
afterAll(async () => {
  await app?.close();
});

describe('GET /docs over HTTP', () => {
  it('answers a page that loads only its own scripts, under a strict Content-Security-Policy', async () => {
    const response = await fetch(`${app.queryUrl}/docs`);
    const html = await response.text();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(sources).toEqual([
      '/docs/swagger-ui.css',
      '/docs/favicon-32x32.png',
      '/docs/swagger-ui-bundle.js',
      '/docs/init.js',
    ]);
    expect(html).not.toMatch(/<script>(?!<\/script>)/);
  });

  it('serves the renderer compressed as asked, each coding with its own ETag, and revalidates', async () => {
    const plain = await fetch(`${app.queryUrl}/docs/swagger-ui-bundle.js`, {
      headers: { 'accept-encoding': 'identity' },
    });
    const body = Buffer.from(await plain.arrayBuffer());
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(body.length).toBeGreaterThan(500_000);
    expect(body.toString('utf8', 0, 4096)).toContain('SwaggerUIBundle');

    // fetch() would decode for us and hide the coding: ask with node:http's view through a raw request.
    const raw = async (coding: string, etag?: string) => {
      const { request } = await import('node:http');
      return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const req = request(`${app.queryUrl}/docs/swagger-ui-bundle.js`, {
          headers: { 'accept-encoding': coding, ...(etag && { 'if-none-match': etag }) },
        });
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
        });
        req.on('error', reject);
        req.end();
      });
    };
    const br = await raw('gzip, br');
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('Accept-Encoding');
    expect(brotliDecompressSync(br.body).equals(body)).toBe(true);
    expect(br.body.length).toBeLessThan(body.length / 3);
    const gzip = await raw('gzip');
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gzip.body).equals(body)).toBe(true);

    const etags = new Set([plain.headers.get('etag'), br.headers.etag, gzip.headers.etag]);
    expect(etags.size).toBe(3);
    const again = await raw('br', String(br.headers.etag));
    expect({ status: again.status, length: again.body.length }).toEqual({ status: 304, length: 0 });
  });

  it('answers 404 problem+json for a file it does not serve', async () => {
    for (const path of ['/docs/index.html', '/docs/package.json', '/docs/..%2Fpackage.json']) {
      const response = await fetch(`${app.queryUrl}${path}`);
      expect({ path, status: response.status, type: response.headers.get('content-type') }).toEqual({
        path,
        status: 404,
        type: 'application/problem+json',
      });
    }
  });
});

describeBrowser('GET /docs in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('renders every route of the table from the project’s own files, and is kept as a screenshot', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const requested: string[] = [];
    const errors: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    page.on('response', (response) => {
      if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
    });
    page.on('pageerror', (error) => errors.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    try {
      await page.goto(`${app.queryUrl}/docs`);
      await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
      const title = (await page.locator('.info .title').textContent()) ?? '';
      const drawn = await page.locator('.opblock-summary-path').allInnerTexts();
      const shown = new Set(drawn.map((text) => text.replace(/\s+/g, '')));
      const directory = join(ROOT, '.cache', 'screenshots');
      mkdirSync(directory, { recursive: true });
      const png = await page.screenshot({ path: join(directory, 'api-reference.png'), fullPage: true });

      expect(title).toContain('Data service');
      for (const route of API_ROUTES)
        expect({ path: route.path, shown: shown.has(route.path) }).toEqual({ path: route.path, shown: true });
      // Nothing from a CDN: every request went to the function itself.
      expect(requested.filter((url) => !url.startsWith(`${app.queryUrl}/`))).toEqual([]);
      expect(requested).toEqual(expect.arrayContaining([`${app.queryUrl}/openapi.json`]));
      expect(errors).toEqual([]);
      // A real picture: PNG signature and a page taller than the viewport's first screen of routes.
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(png.readUInt32BE(20)).toBeGreaterThan(900);
    } finally {
      await page.close();
    }
  }, 60_000);
});
