/**
 * `npm run load:smoke` against the shipped bundles: dist/ingest.mjs and dist/query.mjs started as processes on
 * the test database, then the local smoke runner (scripts/load.ts: the k6 smoke plan step by step, then a short
 * vegeta burst of the mixed stream, every response checked) aimed at them. Zero contract failures allowed.
 * Needs `node esbuild.config.mjs`; installs vegeta into .cache/bin on first use (go install).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { issuerEnv, type TestIssuer, testIssuer } from '../support/auth.ts';
import { testDatabaseUrl } from '../support/database.ts';
import { bundlePath, freePort, ROOT, type SpawnedProcess, spawnNode, waitForReady } from '../support/processes.ts';

const spawned: SpawnedProcess[] = [];
const outDir = mkdtempSync(join(tmpdir(), 'load-smoke-'));

async function startBundle(name: 'ingest' | 'query', issuer: TestIssuer): Promise<string> {
  const port = await freePort();
  // With access control on, as deployed: the runner sends TOKEN on every request.
  const proc = spawnNode(bundlePath(name), {
    ...issuerEnv(issuer),
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: testDatabaseUrl(),
    K_SERVICE: `load-smoke-${name}`,
    LOG_LEVEL: 'warn',
  });
  spawned.push(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitForReady(`${url}/readyz`, { since: proc.startedAt, process: proc });
  return url;
}

/** What go needs to build vegeta the first time (spawnNode passes only PATH and what it is given). */
const goEnv = Object.fromEntries(
  ['HOME', 'GOPATH', 'GOCACHE', 'GOMODCACHE', 'GOPROXY', 'GOFLAGS'].map((name) => [name, process.env[name]]),
);

describe('load:smoke against the bundles', () => {
  let ingestUrl: string;
  let queryUrl: string;
  let token: string;

  beforeAll(async () => {
    const issuer = await testIssuer();
    token = await issuer.allAccess('load-smoke');
    [ingestUrl, queryUrl] = await Promise.all([startBundle('ingest', issuer), startBundle('query', issuer)]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(spawned.map((proc) => proc.kill()));
    rmSync(outDir, { recursive: true, force: true });
  });

  it('keeps the contract on every response', async () => {
    const runner = spawnNode(join(ROOT, 'scripts', 'load.ts'), { ...goEnv, TOKEN: token }, [
      'smoke',
      '--ingest-url',
      ingestUrl,
      '--query-url',
      queryUrl,
      '--out',
      outDir,
    ]);
    spawned.push(runner);
    // A few seconds once vegeta is in .cache/bin; building it the first time takes longer.
    const exit = await runner.waitForExit(240_000);
    const summaryFile = join(outDir, 'summary.json');
    if (!existsSync(summaryFile))
      throw new Error(`no summary (exit ${exit.code}):\n${runner.stderr()}${runner.stdout()}`);
    const summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
    expect({
      code: exit.code,
      failures: summary.contract.examples,
      stderr: exit.code === 0 ? '' : runner.stderr(),
    }).toEqual({
      code: 0,
      failures: [],
      stderr: '',
    });
    expect(summary).toMatchObject({ run: 'smoke', ok: true, contract: { failed: 0 } });
    // The smoke plan's steps (every route and error) plus the vegeta burst (20 requests/s for 2 s).
    expect(summary.contract.checked).toBeGreaterThanOrEqual(20 + 40);
    expect(summary.vegeta.requests).toBe(40);
    expect(summary.vegeta.error_rate).toBe(0);
    expect(readFileSync(join(outDir, 'plot.html'), 'utf8')).toContain('<html');
    expect(JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')).requests).toBe(40);
  }, 260_000);
});
