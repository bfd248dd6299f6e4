/**
 * One self-contained ESM bundle per function (the migration and archive jobs are one too), with sourcemaps and a metafile each:
 * the container image ships these files and nothing from node_modules. `node esbuild.config.mjs` builds all.
 */
import { spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
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

// Three kafkajs modules on the produce path are swapped for ours, with the same results (unit tests hold each equal
// to kafkajs's own) and a fraction of the cost, measured with npm run bench:profile:
// - the record batch's CRC-32C, one byte at a time in kafkajs: lib/events/crc32c.ts, eight at a time;
// - a record's encoding, an Encoder per record and per header in kafkajs: lib/events/kafka-record.ts, one buffer;
// - the grouping of a send's messages by partition, quadratic in kafkajs: lib/events/partition-groups.ts.
// kafkajs 2.2.4 is its last release, so the modules stay where they are; if one moves, the build stops rather than
// silently keeping the slow one.
const KAFKAJS_SWAPS = [
  {
    importer: /[\\/]kafkajs[\\/]src[\\/]protocol[\\/]recordBatch[\\/]v0[\\/]index\.js$/,
    request: '../crc32C',
    replacement: "module.exports = require('./lib/events/crc32c.ts').crc32c;",
  },
  {
    importer: /[\\/]kafkajs[\\/]src[\\/]protocol[\\/]requests[\\/]produce[\\/]v3[\\/]request\.js$/,
    request: '../../../recordBatch/record/v0',
    replacement: "module.exports = require('./lib/events/kafka-record.ts').encodeRecord;",
  },
  {
    importer: /[\\/]kafkajs[\\/]src[\\/]producer[\\/]sendMessages\.js$/,
    request: './groupMessagesPerPartition',
    replacement: "module.exports = require('./lib/events/partition-groups.ts').groupMessagesPerPartition;",
  },
];
const swapped = new Set();
const kafkajsSwaps = {
  name: 'kafkajs-swaps',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const index = KAFKAJS_SWAPS.findIndex((swap) => swap.request === args.path && swap.importer.test(args.importer));
      if (index < 0) return undefined;
      swapped.add(index);
      return { path: String(index), namespace: 'kafkajs-swap' };
    });
    b.onLoad({ filter: /.*/, namespace: 'kafkajs-swap' }, (args) => ({
      contents: KAFKAJS_SWAPS[Number(args.path)].replacement,
      resolveDir: import.meta.dirname,
      loader: 'js',
    }));
  },
};

// Node's built-in modules through require(), not import: an ESM import of one builds its module facade, which
// reads every export, and node:http's lazy getters then load all of undici (its fetch). Imported, the builtins
// cost a function's start 30–50 ms (10 of them timed both ways); required, ~10 ms. The banner's require does it.
const BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
const builtinsThroughRequire = {
  name: 'builtins-through-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_]+(\/[a-z_]+)?$/ }, (args) => {
      if (args.kind !== 'import-statement' || !BUILTINS.has(args.path)) return undefined;
      return { path: args.path.replace(/^node:/, ''), namespace: 'builtin-require' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin-require' }, (args) => ({
      contents: `module.exports = require('node:${args.path}');`,
      loader: 'js',
    }));
  },
};

// kafkajs is CommonJS, so esbuild keeps its require() wherever lib/events is imported, even when nothing of it is
// used: the query bundle evaluated all of kafkajs (265 KiB) at every start for the event schema it takes from
// lib/events. Its module has no side effects of its own; saying so lets a bundle that never publishes drop it.
const PURE_PACKAGES = /^kafkajs$/;
const purePackages = {
  name: 'pure-packages',
  setup(b) {
    b.onResolve({ filter: PURE_PACKAGES }, async (args) => {
      if (args.pluginData?.pure) return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { pure: true },
      });
      return resolved.errors.length > 0 ? undefined : { ...resolved, sideEffects: false };
    });
  },
};

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
    plugins: [kafkajsSwaps, purePackages, builtinsThroughRequire],
    external: UNUSED_DRIVERS,
    logLevel: 'warning',
    // CommonJS dependencies (knex, pg, pino) call require() for Node built-ins; give the ESM bundle one.
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
  });
  await writeFile(`dist/${name}.meta.json`, JSON.stringify(result.metafile));
  const bundlesKafkajs = Object.keys(result.metafile.inputs).some((input) => input.includes('node_modules/kafkajs/'));
  if (bundlesKafkajs && swapped.size !== KAFKAJS_SWAPS.length) {
    const missing = KAFKAJS_SWAPS.filter((_, index) => !swapped.has(index)).map((swap) => swap.request);
    throw new Error(`dist/${name}.mjs bundles kafkajs but did not swap ${missing.join(', ')} (esbuild.config.mjs)`);
  }
  swapped.clear();
  sizes[name] = (await stat(`dist/${name}.mjs`)).size;
}
// The API page's renderer (lib/api/api-reference.ts): served from next to the bundle, never from a CDN.
await mkdir('dist/docs', { recursive: true });
for (const file of [...Object.keys(API_REFERENCE_FILES), 'LICENSE', 'NOTICE']) {
  await copyFile(`node_modules/swagger-ui-dist/${file}`, `dist/docs/${file}`);
}
// V8's code cache of the functions' bundles, made by the Node that built them (in the image, the Dockerfile's build stage,
// whose Node is the runtime's): compiling a 1.7 MB bundle was ~40 % of a function's start in node --cpu-prof,
// and Knative starts pods on the request path. Portable (relative paths), so it holds wherever dist/ is copied;
// the image sets NODE_COMPILE_CACHE to it. A bundle run with an empty environment compiles, then stops at its
// configuration check (exit 78) before it does anything; that is how the cache is written without running one.
// Only the two Knative Services: they start on the request path (scale from zero); the jobs start on a schedule.
const COMPILE_CACHE = 'dist/.compile-cache';
const CACHED_ENTRIES = ['ingest', 'query'];
const CONFIG_ERROR_EXIT = 78;
await rm(COMPILE_CACHE, { recursive: true, force: true });
for (const name of CACHED_ENTRIES) {
  const run = spawnSync(process.execPath, [`dist/${name}.mjs`], {
    env: { NODE_COMPILE_CACHE: COMPILE_CACHE, NODE_COMPILE_CACHE_PORTABLE: '1' },
    stdio: 'ignore',
    timeout: 30_000,
  });
  if (run.status !== CONFIG_ERROR_EXIT) {
    throw new Error(
      `dist/${name}.mjs with no configuration ended with ${run.status ?? run.signal}, not ${CONFIG_ERROR_EXIT}`,
    );
  }
}
let cached = 0;
for (const dir of await readdir(COMPILE_CACHE)) {
  for (const file of await readdir(`${COMPILE_CACHE}/${dir}`)) {
    // Node writes them 0600; the image runs them as another user than the one that built them.
    await chmod(`${COMPILE_CACHE}/${dir}/${file}`, 0o644);
    cached++;
  }
}
if (cached !== CACHED_ENTRIES.length) {
  throw new Error(`${COMPILE_CACHE} holds ${cached} code caches for ${CACHED_ENTRIES.length} bundles`);
}
for (const [name, bytes] of Object.entries(sizes)) {
  process.stdout.write(`dist/${name}.mjs  ${(bytes / 1024).toFixed(1)} KiB\n`);
}
