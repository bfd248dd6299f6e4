/**
 * One self-contained ESM bundle per function (the migration and archive jobs are one too), with sourcemaps and a metafile each:
 * the container image ships these files and nothing from node_modules. `node esbuild.config.mjs` builds all.
 */
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { build } from 'esbuild';
import { API_REFERENCE_FILES } from './lib/api/api-reference-files.ts';

const ENTRIES = {
  ingest: 'functions/ingest/main.ts',
  query: 'functions/query/main.ts',
  relay: 'functions/relay/main.ts',
  migrate: 'functions/migrate/main.ts',
  archive: 'functions/archive/main.ts',
};

// knex loads every dialect's driver lazily by name; only node-pg is used, the rest must not be resolved.
const UNUSED_DRIVERS = [
  'better-sqlite3',
  'sqlite3',
  'mysql',
  'mysql2',
  'oracledb',
  'tedious',
  'pg-native',
  'pg-query-stream',
  'cloudflare:sockets',
  'mariadb',
  'mariadb/callback',
  'pg-cloudflare',
];

await mkdir('dist', { recursive: true });
const sizes = {};
for (const [name, entry] of Object.entries(ENTRIES)) {
  const result = await build({
    entryPoints: [entry],
    outfile: `dist/${name}.mjs`,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    minify: true,
    // No keepNames: it wraps every closure creation in a defineProperty call, ~5 % of a POST's CPU (measured with
    // npm run bench:profile); stack traces and profiles find names through the source maps instead.
    keepNames: false,
    sourcemap: 'linked',
    legalComments: 'linked',
    metafile: true,
    external: UNUSED_DRIVERS,
    logLevel: 'warning',
    // CommonJS dependencies (knex, pg, pino) call require() for Node built-ins; give the ESM bundle one.
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
  });
  await writeFile(`dist/${name}.meta.json`, JSON.stringify(result.metafile));
  sizes[name] = (await stat(`dist/${name}.mjs`)).size;
}
// The API page's renderer (lib/api/api-reference.ts): served from next to the bundle, never from a CDN.
await mkdir('dist/docs', { recursive: true });
for (const file of [...Object.keys(API_REFERENCE_FILES), 'LICENSE', 'NOTICE']) {
  await copyFile(`node_modules/swagger-ui-dist/${file}`, `dist/docs/${file}`);
}
for (const [name, bytes] of Object.entries(sizes)) {
  process.stdout.write(`dist/${name}.mjs  ${(bytes / 1024).toFixed(1)} KiB\n`);
}
