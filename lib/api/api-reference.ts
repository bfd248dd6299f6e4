/**
 * `GET /docs`: the OpenAPI document rendered by Swagger UI, served from the project's own copy of swagger-ui-dist
 * (no CDN at run time, so the page works offline and cannot be changed by a third party). The build
 * (esbuild.config.mjs) copies the files of `API_REFERENCE_FILES` into `dist/docs/`; run from source, they come from
 * node_modules. Read and compressed once, on the first request: a function that is never asked for its docs never
 * holds the 1.7 MB script.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { AppError } from '#lib/errors';
import { type HttpRequest, type HttpResponse, header, type RouteHandler, responseCodingOf } from '#lib/http';
import { API_REFERENCE_FILES } from './api-reference-files.ts';

// Our own start script: a file, so the page's Content-Security-Policy can forbid inline scripts.
const INIT_SCRIPT = `window.addEventListener('load', () => {
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#api', deepLinking: true, tryItOutEnabled: false });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data service API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="api"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// Swagger UI sets style attributes from script, hence 'unsafe-inline' for styles only; it fetches the document
// from this origin ('self') and draws its icons from data: URLs.
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  readonly contentType: string;
  readonly etag: string;
  readonly identity: Buffer;
  readonly br: Buffer;
  readonly gzip: Buffer;
}

/** Where the renderer's files are: next to the bundle when bundled, swagger-ui-dist otherwise. */
function assetDirectory(): string {
  const bundled = join(dirname(fileURLToPath(import.meta.url)), 'docs');
  if (existsSync(join(bundled, 'swagger-ui-bundle.js'))) return bundled;
  return dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

function asset(contentType: string, body: Buffer): Asset {
  return {
    contentType,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    identity: body,
    // Once per process, so at a good setting rather than the fastest one used for list pages.
    br: zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 9 } }),
    gzip: zlib.gzipSync(body, { level: 9 }),
  };
}

function loadAssets(): ReadonlyMap<string, Asset> {
  const dir = assetDirectory();
  return new Map<string, Asset>([
    ['', asset('text/html; charset=utf-8', Buffer.from(PAGE))],
    ['init.js', asset('text/javascript; charset=utf-8', Buffer.from(INIT_SCRIPT))],
    ...Object.entries(API_REFERENCE_FILES).map(
      ([file, type]) => [file, asset(type, readFileSync(join(dir, file)))] as const,
    ),
  ]);
}

function serve(request: HttpRequest, found: Asset, page: boolean): HttpResponse {
  const headers: Record<string, string> = {
    'content-type': found.contentType,
    // The page may change with a deploy; the files are revalidated cheaply by their ETag.
    'cache-control': 'public, max-age=300',
    vary: 'Accept-Encoding',
    ...(page ? PAGE_HEADERS : { 'x-content-type-options': 'nosniff' }),
  };
  const coding = responseCodingOf(header(request, 'accept-encoding'));
  // One representation per coding, each with its own strong validator (RFC 9110 §8.8.3).
  const etag = coding === undefined ? found.etag : `${found.etag.slice(0, -1)}-${coding}"`;
  headers.etag = etag;
  if (header(request, 'if-none-match') === etag) return { statusCode: 304, headers, body: '' };
  if (coding !== undefined) headers['content-encoding'] = coding;
  const body = coding === 'br' ? found.br : coding === 'gzip' ? found.gzip : found.identity;
  return { statusCode: 200, headers, body };
}

/** The handlers of `GET /docs` and `GET /docs/{asset}`. */
export function apiReference(): { page: RouteHandler; asset: RouteHandler } {
  let assets: ReadonlyMap<string, Asset> | undefined;
  const lookup = (name: string): Asset | undefined => {
    assets ??= loadAssets();
    return assets.get(name);
  };
  return {
    page: async (request) => serve(request, lookup('') as Asset, true),
    asset: async (request) => {
      const name = request.params.asset ?? '';
      const found = name === '' ? undefined : lookup(name);
      if (found === undefined) throw new AppError('not-found', `There is no ${request.path}.`);
      return serve(request, found, false);
    },
  };
}
