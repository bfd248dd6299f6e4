/**
 * The files of swagger-ui-dist the API page serves, with their media types: read by the handler
 * (api-reference.ts), copied next to the bundles by esbuild.config.mjs, and so shipped in the image. No imports,
 * so that the build script can read it too.
 */
export const API_REFERENCE_FILES = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
  // Without an icon of its own the browser asks for /favicon.ico, which is not ours to answer.
  'favicon-32x32.png': 'image/png',
} as const;
