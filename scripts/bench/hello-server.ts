/**
 * The bare node:http ceiling (`node-hello`): the least a Node process can do per request on this machine.
 * Run by the bench as its own process: `PORT=… node scripts/bench/hello-server.ts`.
 */
import { createServer } from 'node:http';

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
  res.end('hello');
});
server.keepAliveTimeout = 95_000;
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
