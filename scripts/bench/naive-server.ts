/**
 * The naive reference (`naive-post`, `naive-get`, `naive-list`): node:http + node-pg and nothing else. One plain
 * INSERT per POST into a simple table, one SELECT by id per GET, and for `GET /data?source=&limit=` the keyset
 * SELECT of a first list page (the service's ORDER BY, on an index that matches it). No validation library, no
 * cache, no batching, no outbox, no logs: it shows what the service's layers cost and gain, in the same run.
 * Run by the bench as its own process: `PORT=… DATABASE_URL=… node scripts/bench/naive-server.ts`.
 */
import { createServer, type ServerResponse } from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_MAX ?? 10) });
const COLUMNS = 'id, source, type, "timestamp", payload, received_at';

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

interface Input {
  id: string;
  source: string;
  type: string;
  timestamp?: string;
  payload: object;
}

const server = createServer((req, res) => {
  const fail = (error: unknown) => send(res, 500, { error: String(error) });
  const path = req.url ?? '/';
  if (req.method === 'POST' && path === '/data') {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let input: Input;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Input;
      } catch {
        send(res, 400, { error: 'bad json' });
        return;
      }
      pool
        .query('INSERT INTO bench_naive (id, source, type, "timestamp", payload) VALUES ($1, $2, $3, $4, $5)', [
          input.id,
          input.source,
          input.type,
          input.timestamp ?? new Date().toISOString(),
          JSON.stringify(input.payload),
        ])
        .then(() => send(res, 201, { records: [{ id: input.id, status: 'created' }] }), fail);
    });
    return;
  }
  if (req.method === 'GET' && path.startsWith('/data/')) {
    pool.query(`SELECT ${COLUMNS} FROM bench_naive WHERE id = $1`, [path.slice('/data/'.length)]).then((r) => {
      if (r.rows[0] === undefined) send(res, 404, { error: 'not found' });
      else send(res, 200, r.rows[0]);
    }, fail);
    return;
  }
  if (req.method === 'GET' && path.startsWith('/data?')) {
    const query = new URLSearchParams(path.slice('/data?'.length));
    const limit = Number(query.get('limit') ?? 100);
    pool
      .query(`SELECT ${COLUMNS} FROM bench_naive WHERE source = $1 ORDER BY "timestamp" DESC, id DESC LIMIT $2`, [
        query.get('source'),
        limit + 1,
      ])
      .then((r) => send(res, 200, { records: r.rows.slice(0, limit), more: r.rows.length > limit }), fail);
    return;
  }
  if (path === '/healthz') {
    send(res, 200, { ok: true });
    return;
  }
  send(res, 404, { error: 'not found' });
});
server.keepAliveTimeout = 95_000;
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool.end();
});
