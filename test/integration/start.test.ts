/**
 * `npm start` as a user runs it: scripts/start.ts, the functions unbundled from their main.ts (what neither the
 * bundles nor the in-process apps exercise: Node's own ESM loading of every dependency), the gateway, the local
 * token issuer, and the token it prints. On a private database, so it migrates from scratch.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';
import { freePort, ROOT, type SpawnedProcess, spawnNode } from '../support/processes.ts';

let database: PrivateDatabase;
let start: SpawnedProcess;
let base: string;
let token: string;

beforeAll(async () => {
  database = await createPrivateDatabase('start');
  const port = await freePort();
  start = spawnNode(`${ROOT}/scripts/start.ts`, {
    HOME: process.env.HOME,
    PORT: String(port),
    DATABASE_URL: database.url,
    LOG_LEVEL: 'warn',
  });
  const ready = await start.waitForLine((line) => line.startsWith('Data service ready on'), 60_000);
  base = /on (http:\/\/\S+)/.exec(ready)?.[1] ?? '';
  // The token line follows the ready line.
  const deadline = Date.now() + 5_000;
  while (!/export TOKEN=/.test(start.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  token = /export TOKEN=(\S+)/.exec(start.stdout())?.[1] ?? '';
}, 90_000);

afterAll(async () => {
  start?.child.kill('SIGINT');
  await start?.waitForExit(30_000).catch(() => start.kill());
  await database?.drop();
});

describe('npm start', () => {
  it('serves the API with auth on, and the token it prints writes and reads every source', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(token.split('.')).toHaveLength(3);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const posted = await fetch(`${base}/data`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ source: 'sensor-1', type: 'temperature', payload: { celsius: 21.5 } }),
    });
    expect(posted.status).toBe(201);
    const location = posted.headers.get('location') ?? '';
    const read = await fetch(`${base}${location}`, { headers: { authorization: headers.authorization } });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { payload: unknown }).payload).toEqual({ celsius: 21.5 });
    expect((await fetch(`${base}${location}`)).status).toBe(401);
    expect(start.stdout()).toContain(`curl -s -X POST ${base}/data -H "authorization: Bearer $TOKEN"`);
  });
});
