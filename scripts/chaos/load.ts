/**
 * The chaos soak's load: `clients` closed loops, each pausing between requests, so the rate is bounded by the
 * pause and the machine rather than by a target that faults make unreachable. The mix: single writes with and
 * without a client id, batches, retries of unanswered writes (same body, so idempotent), a conflicting write under
 * an acknowledged id, GET of acknowledged ids (with revalidation), of never-written ids, a read before and right
 * after a write, and list pages. Every answer is judged against the HTTP contract as it arrives.
 */
import { randomUUID } from 'node:crypto';
import { sleep } from '../processes.ts';
import type { Answer, Ledger, Operation } from './ledger.ts';
import { between, prng } from './plan.ts';
import type { Target } from './targets.ts';

export interface LoadOptions {
  readonly clients: number;
  readonly pauseMs: number;
  /** The client's bound on one request: no answer within it is a hang. */
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly sources: readonly string[];
  readonly seed: number;
  readonly ingest: Target;
  readonly query: Target;
  readonly ledger: Ledger;
  /** The phase a request starting now belongs to. */
  phase(): string;
  stopped(): boolean;
}

/** The operations a loop draws; the reads around a write and the revalidation follow from others. */
type Drawn = Exclude<Operation, 'get-before-write' | 'get-after-write' | 'get-revalidate'>;

const WEIGHTS: ReadonlyArray<readonly [Drawn, number]> = [
  ['post', 30],
  ['post-anonymous', 12],
  ['batch', 10],
  ['retry', 5],
  ['conflict', 2],
  ['get', 25],
  ['get-unknown', 5],
  ['list', 11],
];
const TOTAL_WEIGHT = WEIGHTS.reduce((sum, [, w]) => sum + w, 0);
/** The operation whose share of the weights contains `roll` (0 ≤ roll < 1). */
function draw(roll: number): Drawn {
  let left = roll * TOTAL_WEIGHT;
  for (const [operation, weight] of WEIGHTS) {
    left -= weight;
    if (left < 0) return operation;
  }
  return 'get';
}

/** Client-id writes kept for retries and conflicts (the newest; older ones are only counted). */
const KEPT = 2_000;
/** A connection error right after a kill comes back at once: this keeps a loop from spinning on it. */
const REFUSED_PAUSE_MS = 50;

interface Written {
  readonly id: string;
  readonly body: string;
}

interface Reply extends Answer {
  readonly body: string;
  readonly etag: string | null;
  /** No answer because the target was killed under the request or was down when it began. */
  readonly cut: boolean;
}

/** What the load leaves behind for the final count, beyond the ledger. */
export interface LoadOutcome {
  /** Client ids whose write was answered with a failure (429/503) and never retried. */
  readonly refused: ReadonlySet<string>;
}

export async function runLoad(options: LoadOptions): Promise<LoadOutcome> {
  const { ledger, headers, timeoutMs } = options;
  const ackedList: string[] = [];
  const written: Written[] = [];
  const unanswered: Written[] = [];
  const refused = new Set<string>();
  const keep = (list: Written[], entry: Written) => {
    list.push(entry);
    if (list.length > KEPT) list.splice(0, list.length - KEPT);
  };

  const send = async (target: Target, path: string, init: RequestInit = {}): Promise<Reply> => {
    const kills = target.kills();
    const wasDown = target.down();
    const started = performance.now();
    try {
      const response = await fetch(`${target.url()}${path}`, {
        ...init,
        headers: { ...headers, ...(init.headers as Record<string, string> | undefined) },
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = await response.text();
      return {
        status: response.status,
        ms: performance.now() - started,
        body,
        etag: response.headers.get('etag'),
        cut: false,
      };
    } catch (error) {
      const ms = performance.now() - started;
      const name = error instanceof Error ? error.name : String(error);
      const code = (error as { cause?: { code?: string } }).cause?.code;
      const cut = wasDown || target.kills() !== kills || target.down();
      return { status: 0, ms, body: '', etag: null, cut, error: name === 'TimeoutError' ? 'timeout' : (code ?? name) };
    }
  };

  /** Records `reply` of `operation`; `allowed` are the statuses the contract permits here, `failure` names others. */
  const judge = (operation: Operation, phase: string, reply: Reply, allowed: readonly number[], wrong?: string) => {
    if (reply.status === 0) {
      if (reply.cut) {
        ledger.cut();
        ledger.record(operation, phase, reply);
      } else {
        const what = reply.error === 'timeout' ? 'no answer within the client timeout' : 'connection failed, no kill';
        ledger.record(operation, phase, reply, what);
      }
      return;
    }
    const ok = allowed.includes(reply.status);
    const failure = ok ? undefined : (wrong ?? `status ${reply.status}`);
    ledger.record(operation, phase, reply, failure, ok ? '' : reply.body.slice(0, 300));
  };

  const idsOf = (reply: Reply): string[] => {
    try {
      const parsed = JSON.parse(reply.body) as { records?: Array<{ id?: string }> };
      return (parsed.records ?? []).flatMap((r) => (typeof r.id === 'string' ? [r.id] : []));
    } catch {
      return [];
    }
  };
  const acknowledge = (ids: readonly string[]) => {
    for (const id of ids) {
      if (!ledger.acknowledged.has(id)) ackedList.push(id);
    }
    ledger.acknowledge(ids);
  };
  const post = (body: string) =>
    send(options.ingest, '/data', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const getById = (id: string, extra: Record<string, string> = {}) =>
    send(options.query, `/data/${id}`, { headers: extra });

  const record = (random: () => number, withId: boolean, n: number) => ({
    ...(withId && { id: randomUUID(), timestamp: new Date().toISOString() }),
    source: options.sources[Math.floor(random() * options.sources.length)],
    type: 'chaos',
    payload: { n, text: 'chaos soak record', at: Date.now() },
  });

  /** A write of records whose ids the client chose: acknowledged on 201, kept for retries if unanswered. */
  const writeKnown = async (operation: Operation, phase: string, entries: Written[], body: string) => {
    // A retried write may have been committed by its unanswered first attempt: only first attempts count here.
    const first = operation !== 'retry';
    const reply = await post(body);
    judge(operation, phase, reply, [201, 409, 429, 503]);
    if (reply.status === 201) {
      acknowledge(idsOf(reply));
      for (const entry of entries) keep(written, entry);
    } else if (reply.status === 0) {
      for (const entry of entries) keep(unanswered, entry);
    } else if (reply.status === 429 || reply.status === 503) {
      for (const entry of entries) if (first) refused.add(entry.id);
    }
    return reply;
  };

  const operations: Record<Drawn, (random: () => number, phase: string) => Promise<Reply | undefined>> = {
    async post(random, phase) {
      const rec = record(random, true, 1) as { id: string };
      const body = JSON.stringify(rec);
      // A quarter of them read their own write: 404 before it is fine, after its 201 it never is.
      const probe = random() < 0.25;
      if (probe) {
        const before = await getById(rec.id);
        judge('get-before-write', phase, before, [404, 429, 503], 'found before it was written');
      }
      const reply = await writeKnown('post', phase, [{ id: rec.id, body }], body);
      if (probe && reply.status === 201) {
        const after = await getById(rec.id);
        judge('get-after-write', options.phase(), after, [200, 429, 503], '404 after 201 (read-your-writes)');
      }
      return reply;
    },
    async 'post-anonymous'(random, phase) {
      const reply = await post(JSON.stringify(record(random, false, 1)));
      judge('post-anonymous', phase, reply, [201, 429, 503]);
      if (reply.status === 201) acknowledge(idsOf(reply));
      return reply;
    },
    async batch(random, phase) {
      const count = between(random, [2, 20]);
      const records = Array.from({ length: count }, (_, i) => record(random, random() < 0.5, i));
      const known = records.flatMap((r) => ('id' in r && r.id ? [{ id: r.id, body: JSON.stringify(r) }] : []));
      const reply = await writeKnown('batch', phase, known, JSON.stringify({ records }));
      if (reply.status === 201 && idsOf(reply).length !== count) {
        ledger.record('batch', phase, reply, 'a 201 that does not name every record', reply.body.slice(0, 300));
      }
      return reply;
    },
    async retry(random, phase) {
      const from = unanswered.length > 0 ? unanswered : written;
      const entry = from.splice(Math.floor(random() * from.length), 1)[0];
      if (entry === undefined) return undefined;
      // The same body again: idempotent by its id, so a conflict here would be the service's error.
      return writeKnown('retry', phase, [entry], entry.body);
    },
    async conflict(random, phase) {
      const entry = written[Math.floor(random() * written.length)];
      if (entry === undefined) return undefined;
      const other = { ...(JSON.parse(entry.body) as object), payload: { other: 'content' } };
      const reply = await post(JSON.stringify(other));
      judge('conflict', phase, reply, [409, 429, 503], 'other content under an acknowledged id not refused');
      return reply;
    },
    async get(random, phase) {
      const id = ackedList[Math.floor(random() * ackedList.length)];
      if (id === undefined) return undefined;
      const reply = await getById(id);
      judge('get', phase, reply, [200, 429, 503], reply.status === 404 ? '404 after 201' : undefined);
      if (reply.status === 200 && reply.etag !== null && random() < 0.3) {
        const again = await getById(id, { 'if-none-match': reply.etag });
        judge(
          'get-revalidate',
          options.phase(),
          again,
          [304, 429, 503],
          again.status === 404 ? '404 after 201' : undefined,
        );
      }
      return reply;
    },
    async 'get-unknown'(_random, phase) {
      const reply = await getById(randomUUID());
      judge(
        'get-unknown',
        phase,
        reply,
        [404, 429, 503],
        reply.status === 200 ? 'found a never-written id' : undefined,
      );
      return reply;
    },
    async list(random, phase) {
      const source = options.sources[Math.floor(random() * options.sources.length)] ?? '';
      const limit = between(random, [10, 200]);
      const reply = await send(options.query, `/data?source=${encodeURIComponent(source)}&limit=${limit}`);
      judge('list', phase, reply, [200, 429, 503]);
      return reply;
    },
  };

  await Promise.all(
    Array.from({ length: options.clients }, async (_, client) => {
      const random = prng((options.seed * 1_000_003 + client + 1) >>> 0);
      while (!options.stopped()) {
        const operation = draw(random());
        const reply = await operations[operation](random, options.phase());
        await sleep(reply?.status === 0 ? REFUSED_PAUSE_MS : options.pauseMs);
      }
    }),
  );
  return { refused };
}
