/**
 * The naive reference (`naive-post`, `naive-get`): node:http + node-pg and nothing else. One plain INSERT per
 * POST into a simple table, one SELECT per GET, no validation library, no cache, no batching, no outbox, no logs.
 * It shows what group commit and the cache gain, measured in the same run as the service.
 * Run by the bench as its own process: `PORT=… DATABASE_URL=… node scripts/bench/naive-server.ts`.
 */
import { createServer, type ServerResponse } from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_MAX ?? 10) });

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
  if (req.method === 'POST' && req.url === '/data') {
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
  if (req.method === 'GET' && req.url?.startsWith('/data/')) {
    pool
      .query('SELECT id, source, type, "timestamp", payload, received_at FROM bench_naive WHERE id = $1', [
        req.url.slice('/data/'.length),
      ])
      .then((result) => {
        const row = result.rows[0];
        if (row === undefined) send(res, 404, { error: 'not found' });
        else send(res, 200, row);
      }, fail);
    return;
  }
  if (req.url === '/healthz') {
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
