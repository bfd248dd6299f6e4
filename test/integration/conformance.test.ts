/**
 * The Knative runtime contract, proved on the shipped bundles started the way Knative starts a revision's user
 * container: PORT, K_SERVICE, K_CONFIGURATION, K_REVISION, the settings of knative/base/settings.env (what the
 * ConfigMap gives every pod), credentials as the Secret would (DATABASE_URL, REDIS_URL, KAFKA_BROKERS from the test
 * services), and no HOST: a pod listens on all interfaces. Both bundles run side by side, so the suite pays the real
 * 91 s keep-alive wait once. Needs `npm run build`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Database } from '#lib/db';
import { connectOutcome, RawConnection, requestText } from '../../scripts/image/http.ts';
import { OPEN_BUNDLE_ENV } from '../support/auth.ts';
import { createTestDatabase, testDatabaseUrl } from '../support/database.ts';
import {
  bundlePath,
  freePort,
  ROOT,
  type SpawnedProcess,
  sleep,
  spawnNode,
  waitForReady,
} from '../support/processes.ts';

/** queue-proxy closes upstream keep-alive connections idle this long; the app must keep them longer. */
const QUEUE_PROXY_IDLE_MS = 90_000;
/** queue-proxy's drain (the user container's preStop hook) before the app gets SIGTERM: knative/README.md. */
const QUEUE_PROXY_DRAIN_MS = 30_000;
const IN_FLIGHT = 5;
const RUN = Math.random().toString(36).slice(2, 8);

type FunctionName = 'ingest' | 'query';

/** KEY=VALUE lines of knative/base/settings.env: the ConfigMap every pod gets. */
const SETTINGS = Object.fromEntries(
  readFileSync(join(ROOT, 'knative', 'base', 'settings.env'), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
);
const DRAIN_TIMEOUT_MS = Number(SETTINGS.DRAIN_TIMEOUT_MS);

/** The Knative Service's timeoutSeconds, which Knative also makes the pod's terminationGracePeriodSeconds. */
function gracePeriodMs(name: FunctionName): number {
  const manifest = readFileSync(join(ROOT, 'knative', 'base', `${name}.yaml`), 'utf8');
  const seconds = /^\s+timeoutSeconds:\s*(\d+)\s*$/m.exec(manifest)?.[1];
  if (seconds === undefined) throw new Error(`knative/base/${name}.yaml has no timeoutSeconds`);
  return Number(seconds) * 1000;
}

interface Started {
  readonly name: FunctionName;
  readonly port: number;
  readonly service: string;
  readonly revision: string;
  readonly proc: SpawnedProcess;
  readonly readyMs: number;
}

const spawned: SpawnedProcess[] = [];

async function startAsKnative(name: FunctionName): Promise<Started> {
  const port = await freePort();
  const service = `conformance-${name}-${RUN}`;
  const revision = `${service}-00001`;
  const secret = {
    DATABASE_URL: testDatabaseUrl(),
    REDIS_URL: process.env.REDIS_URL,
    KAFKA_BROKERS: process.env.KAFKA_BROKERS,
  };
  const proc = spawnNode(bundlePath(name), {
    ...OPEN_BUNDLE_ENV,
    ...SETTINGS,
    ...secret,
    PORT: String(port),
    K_SERVICE: service,
    K_CONFIGURATION: service,
    K_REVISION: revision,
  });
  spawned.push(proc);
  const readyMs = await waitForReady(`http://127.0.0.1:${port}/readyz`, { since: proc.startedAt, process: proc });
  return { name, port, service, revision, proc, readyMs };
}

const logLines = (proc: SpawnedProcess): Array<Record<string, unknown>> =>
  proc.stdoutLines().flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

const isMessage = (message: string) => (line: string) => {
  try {
    return (JSON.parse(line) as { msg?: unknown }).msg === message;
  } catch {
    return false;
  }
};

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
});

describe('Knative runtime contract of the bundles', () => {
  let ingest: Started;
  let query: Started;
  let db: Database;

  beforeAll(async () => {
    db = createTestDatabase(2);
    // One after the other, so that each start-to-ready figure is the bundle's own.
    ingest = await startAsKnative('ingest');
    query = await startAsKnative('query');
    for (const started of [ingest, query]) {
      console.log(`${started.name}: spawn to first /readyz 200 in ${started.readyMs.toFixed(0)} ms (Knative env)`);
    }
  }, 40_000);
  afterAll(async () => {
    await Promise.all([ingest?.proc.kill(), query?.proc.kill()]);
    await db?.destroy();
  });

  it('listens on $PORT on every interface and stamps K_SERVICE and K_REVISION on every log line', async () => {
    for (const started of [ingest, query]) {
      const ready = logLines(started.proc).find((line) => line.msg === 'ready to serve');
      expect(ready).toMatchObject({ port: started.port, host: '0.0.0.0' });
      for (const line of logLines(started.proc)) {
        expect(line).toMatchObject({ service: started.service, revision: started.revision });
      }
      const connection = await RawConnection.open(started.port);
      connection.write(requestText('GET', '/healthz'));
      expect((await connection.response()).status).toBe(200);
      connection.destroy();
    }
  });

  it(`keeps an idle keep-alive connection open past queue-proxy's ${QUEUE_PROXY_IDLE_MS / 1000} s idle timeout`, async () => {
    const source = `conformance.idle.${RUN}`;
    const [ingestConnection, queryConnection] = await Promise.all([
      RawConnection.open(ingest.port),
      RawConnection.open(query.port),
    ]);
    try {
      for (const connection of [ingestConnection, queryConnection]) {
        connection.write(requestText('GET', '/healthz'));
        const first = await connection.response();
        expect(first.status).toBe(200);
        expect(first.headers.connection).toBe('keep-alive');
        // Node announces its keep-alive timeout: it must exceed queue-proxy's.
        const announced = Number(/timeout=(\d+)/.exec(first.headers['keep-alive'] ?? '')?.[1]);
        expect(announced * 1000).toBeGreaterThan(QUEUE_PROXY_IDLE_MS);
      }
      const idleFrom = performance.now();
      await sleep(QUEUE_PROXY_IDLE_MS + 1_000);
      expect({ ingest: ingestConnection.closedAt, query: queryConnection.closedAt }).toEqual({
        ingest: undefined,
        query: undefined,
      });

      // The same sockets, after the idle period, carry real requests.
      ingestConnection.write(
        requestText('POST', '/data', JSON.stringify({ source, type: 'reading', payload: { idle_ms: 91_000 } })),
      );
      const written = await ingestConnection.response();
      expect(written.status).toBe(201);
      const id = (JSON.parse(written.body) as { records: Array<{ id: string }> }).records[0]?.id;
      queryConnection.write(requestText('GET', `/data/${id}`));
      const read = await queryConnection.response();
      expect(read.status).toBe(200);
      expect(JSON.parse(read.body)).toMatchObject({ id, source });
      console.log(
        `keep-alive: both connections idle ${((performance.now() - idleFrom) / 1000).toFixed(1)} s, then reused (201, 200)`,
      );
    } finally {
      ingestConnection.destroy();
      queryConnection.destroy();
    }
  }, 150_000);

  it('on SIGTERM with requests in flight: not ready, answers every request, exits 0 within the grace period', async () => {
    const source = `conformance.drain.${RUN}`;
    const partialRequests: Record<FunctionName, () => { head: string; rest: string }> = {
      ingest: () => {
        const body = JSON.stringify({ id: randomUUID(), source, type: 'reading', payload: { in_flight: true } });
        return splitRequest(requestText('POST', '/data', body));
      },
      query: () => splitRequest(requestText('GET', `/data?source=${source}&limit=5`, '1234567890', 'text/plain')),
    };

    const outcomes = await Promise.all(
      [ingest, query].map(async (started) => {
        // IN_FLIGHT requests whose headers are in (each is in flight) but whose bodies are still arriving, and a
        // probe whose headers are not complete yet: it will be answered after SIGTERM.
        const requests = Array.from({ length: IN_FLIGHT }, partialRequests[started.name]);
        const connections = await Promise.all(requests.map(() => RawConnection.open(started.port)));
        requests.forEach((request, i) => {
          connections[i]?.write(request.head);
        });
        const probe = await RawConnection.open(started.port);
        probe.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n');
        await sleep(200);

        const signalledAt = performance.now();
        started.proc.child.kill('SIGTERM');
        const draining = JSON.parse(await started.proc.waitForLine(isMessage('draining'), 2_000));
        const refused = await connectOutcome(started.port);
        probe.write('\r\n');
        const readiness = await probe.response();
        await sleep(300);
        const runningAfterSignal = started.proc.child.exitCode === null && started.proc.child.signalCode === null;

        requests.forEach((request, i) => {
          connections[i]?.write(request.rest);
        });
        const responses = await Promise.all(connections.map((connection) => connection.response()));
        const exit = await started.proc.waitForExit(DRAIN_TIMEOUT_MS + 10_000);
        const exitedAfterMs = performance.now() - signalledAt;
        for (const connection of [...connections, probe]) connection.destroy();
        return { started, draining, refused, readiness, runningAfterSignal, responses, exit, exitedAfterMs };
      }),
    );

    for (const outcome of outcomes) {
      const { started } = outcome;
      expect(outcome.draining).toMatchObject({ reason: 'SIGTERM', in_flight: IN_FLIGHT });
      // Not ready: new connections (kubelet's and queue-proxy's probes) are refused, and /readyz says draining.
      expect(outcome.refused).toBe('ECONNREFUSED');
      expect({ status: outcome.readiness.status, body: JSON.parse(outcome.readiness.body) }).toEqual({
        status: 503,
        body: { status: 'draining' },
      });
      expect(outcome.runningAfterSignal).toBe(true);
      // Every request in flight at SIGTERM is answered, none fails.
      const expected = started.name === 'ingest' ? 201 : 200;
      expect(outcome.responses.map((r) => r.status)).toEqual(Array(IN_FLIGHT).fill(expected));
      expect({ code: outcome.exit.code, signal: outcome.exit.signal }).toEqual({ code: 0, signal: null });
      // Knative gives the pod timeoutSeconds in all; queue-proxy's drain takes the first 30 s of it.
      expect(outcome.exitedAfterMs).toBeLessThan(gracePeriodMs(started.name) - QUEUE_PROXY_DRAIN_MS);
      expect(outcome.exitedAfterMs).toBeLessThan(DRAIN_TIMEOUT_MS);
      expect(logLines(started.proc).find((line) => line.msg === 'stopped')).toMatchObject({
        completed: true,
        abandoned: 0,
      });
      console.log(
        `${started.name}: SIGTERM with ${IN_FLIGHT} requests in flight → all ${expected}, exit 0 after ${outcome.exitedAfterMs.toFixed(0)} ms (budget ${gracePeriodMs(started.name) - QUEUE_PROXY_DRAIN_MS} ms)`,
      );
    }
    const committed = await db.raw('SELECT count(*)::int AS n FROM records WHERE source = ?', [source]);
    expect((committed.rows as Array<{ n: number }>)[0]?.n).toBe(IN_FLIGHT);
  }, 60_000);
});

/** Headers plus the first half of the body, and the rest: the server has the request but not all of it. */
function splitRequest(text: string): { head: string; rest: string } {
  const bodyAt = text.indexOf('\r\n\r\n') + 4;
  const cut = bodyAt + Math.floor((text.length - bodyAt) / 2);
  return { head: text.slice(0, cut), rest: text.slice(cut) };
}
