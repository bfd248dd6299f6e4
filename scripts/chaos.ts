/**
 * `npm run chaos -- --duration 10m --seed N`: the chaos soak (issue 12, item 8). The deployed bundles
 * (`dist/ingest.mjs` with its relay inside, `dist/query.mjs`, and `dist/relay.mjs` as a second relay of its own)
 * run with the deployed settings against the backing services on loopback, through the bench lifecycle, under a
 * mixed, bounded load (scripts/chaos/load.ts), while the seed's schedule (scripts/chaos/plan.ts) SIGKILLs and
 * SIGSTOPs those processes, restarts PostgreSQL and takes Redis and Kafka down and up (scripts/chaos/faults.ts).
 * Then it counts (scripts/chaos/count.ts): acknowledged = stored = on Kafka, every answer within the contract,
 * p50/p99 per phase; prints them, writes bench-results/chaos-<seed>.json, and exits 1 when an invariant fails.
 * Docs: docs/reliability.md.
 */
import { parseArgs } from 'node:util';
import { ARGS, runBench, say } from './bench/lifecycle.ts';
import { formatTable } from './bench/report.ts';
import { countKafka, countStorage } from './chaos/count.ts';
import { type Injected, inject, undoAll, undoAllSync } from './chaos/faults.ts';
import { createLedger } from './chaos/ledger.ts';
import { runLoad } from './chaos/load.ts';
import { parseDuration, planRun, RECOVERY_MS } from './chaos/plan.ts';
import { startTarget } from './chaos/targets.ts';
import { sleep } from './processes.ts';

const USAGE = `usage: npm run chaos -- [--duration 10m] [--seed 1] [--clients 6] [--pause-ms 20] [--plan] [--dist DIR]

  --duration D   how long the load and the faults go on: 60s, 10m, 1h (10 s … 2 h; default 10m)
  --seed N       the schedule's seed: the same seed, the same faults in the same order and holds (default 1)
  --clients N    concurrent client loops (default 6)
  --pause-ms N   each loop's pause between requests (default 20)
  --plan         print the seed's schedule and exit, starting nothing
  --dist DIR     bundles to use as built (default: this tree's dist/, built first)
  --help         this text

Writes bench-results/chaos-<seed>.json; exit status 1 when an invariant fails. See docs/reliability.md.
`;

/** The client's bound on one request: no answer within it is a hang (the longest planned SIGSTOP is 5 s). */
const CLIENT_TIMEOUT_MS = 10_000;
const DRAIN_TIMEOUT_MS = 120_000;
const KAFKA_READ_TIMEOUT_MS = 120_000;

function options() {
  const { values } = parseArgs({
    args: ARGS,
    options: {
      duration: { type: 'string', default: '10m' },
      seed: { type: 'string', default: '1' },
      clients: { type: 'string', default: '6' },
      'pause-ms': { type: 'string', default: '20' },
      plan: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const durationMs = parseDuration(values.duration);
  const int = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} ${text}: an integer ${min} … ${max}`);
    return n;
  };
  if (durationMs === undefined) throw new Error(`--duration ${values.duration}: use e.g. 60s or 10m (10 s … 2 h)`);
  return {
    help: values.help,
    planOnly: values.plan,
    durationMs,
    seed: int('seed', values.seed, 0, 2 ** 32 - 1),
    clients: int('clients', values.clients, 1, 64),
    pauseMs: int('pause-ms', values['pause-ms'], 0, 10_000),
  };
}

let opts: ReturnType<typeof options>;
try {
  opts = options();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const plan = planRun(opts.seed, opts.durationMs);
if (opts.planOnly) {
  process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
  process.exit(0);
}

// Before the lifecycle's own handlers, which clean up at once: the services this run took down come up first, or
// the Redis keys, the topic and the database could not be removed and the next user would find them stopped.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => undoAllSync(say));
const watchdog = setTimeout(() => {
  say('the run overran its bound: undoing the faults and stopping');
  undoAllSync(say);
  process.kill(process.pid, 'SIGTERM');
}, opts.durationMs + 240_000);
watchdog.unref();

let failed = false;
await runBench({
  name: `chaos-${opts.seed}`,
  database: `data_service_bench_chaos_${opts.seed}`,
  deadlineSeconds: Math.ceil(opts.durationMs / 1000) + 300,
  async body(ctx) {
    const env = ctx.functionEnv();
    const targets = {
      ingest: await startTarget(ctx, 'ingest', env),
      query: await startTarget(ctx, 'query', env),
      relay: await startTarget(ctx, 'relay', env),
    };
    const ledger = createLedger();
    let phase = 'steady';
    let stopped = false;
    const began = performance.now();
    const since = () => Math.round(performance.now() - began);
    say(`seed ${opts.seed}: ${plan.faults.length} faults in ${opts.durationMs / 1000} s, ${opts.clients} clients`);
    const load = runLoad({
      clients: opts.clients,
      pauseMs: opts.pauseMs,
      timeoutMs: CLIENT_TIMEOUT_MS,
      headers: ctx.requestHeaders,
      sources: ['a', 'b', 'c'].map((s) => `chaos.${ctx.runId}.${s}`),
      seed: opts.seed,
      ingest: targets.ingest,
      query: targets.query,
      ledger,
      phase: () => phase,
      stopped: () => stopped,
    });
    const injected: Injected[] = [];
    let faultError: string | undefined;
    try {
      await sleep(plan.warmupMs);
      for (const fault of plan.faults) {
        await sleep(fault.gapMs);
        if (performance.now() - began > opts.durationMs) break;
        const at = since();
        say(`${(at / 1000).toFixed(1)} s: ${fault.kind}, held ${fault.holdMs} ms`);
        phase = `fault:${fault.kind}`;
        await inject(fault.kind, fault.holdMs, targets, () => undefined);
        injected.push({ kind: fault.kind, at_ms: at, undone_at_ms: since(), hold_ms: fault.holdMs });
        phase = `recovery:${fault.kind}`;
        await sleep(RECOVERY_MS);
        phase = 'steady';
      }
      await sleep(Math.max(0, opts.durationMs - (performance.now() - began)));
    } catch (error) {
      faultError = error instanceof Error ? error.message : String(error);
      say(`a fault could not be undone: ${faultError}`);
    } finally {
      stopped = true;
      await load;
      await undoAll();
    }
    const loadMs = since();
    const outcome = await load;

    say('load stopped; waiting for the outbox to drain, then counting');
    const storage = await countStorage(ctx.databaseUrl, DRAIN_TIMEOUT_MS);
    const kafka = await countKafka(env.KAFKA_BROKERS ?? '', ctx.kafkaTopic, KAFKA_READ_TIMEOUT_MS);
    const acknowledged = [...ledger.acknowledged];
    const notStored = acknowledged.filter((id) => !storage.stored.has(id));
    const notOnKafka = acknowledged.filter((id) => !kafka.ids.has(id));
    const storedNotOnKafka = [...storage.stored].filter((id) => !kafka.ids.has(id));
    const summary = ledger.summary();
    const failureCount = Object.values(summary.failures).reduce((a, b) => a + b, 0);
    const check = (name: string, ok: boolean, detail: string) => ({ name, ok, detail });
    const invariants = [
      check('acknowledged records all stored in PostgreSQL', notStored.length === 0, sample(notStored)),
      check('acknowledged records all on Kafka', notOnKafka.length === 0, sample(notOnKafka)),
      check('stored records all on Kafka (invariant 2)', storedNotOnKafka.length === 0, sample(storedNotOnKafka)),
      check('the outbox drained', storage.outboxLeft === 0, `${storage.outboxLeft} events left`),
      check('the topic was read to its end', kafka.complete, ''),
      check('every answer within the contract', failureCount === 0, JSON.stringify(summary.failures)),
      check('every fault undone', faultError === undefined, faultError ?? ''),
      check('records were acknowledged', acknowledged.length > 0, ''),
    ];
    failed = invariants.some((i) => !i.ok);
    const counts = {
      acknowledged: acknowledged.length,
      stored: storage.stored.size,
      stored_acknowledged: acknowledged.length - notStored.length,
      on_kafka_distinct: kafka.ids.size,
      on_kafka_acknowledged: acknowledged.length - notOnKafka.length,
      kafka_messages: kafka.messages,
      kafka_duplicates: kafka.duplicates,
      lost_in_postgres: notStored.length,
      lost_on_kafka: notOnKafka.length,
      stored_not_on_kafka: storedNotOnKafka.length,
      stored_never_acknowledged: storage.stored.size - (acknowledged.length - notStored.length),
      // Issue 12 item 3 (deadlines): a write answered 429/503 should never be committed afterwards.
      stored_after_refusal: [...outcome.refused].filter((id) => storage.stored.has(id)).length,
      refused_writes: outcome.refused.size,
      dead_letters: storage.deadLetters,
      outbox_drain_ms: Math.round(storage.drainMs),
    };
    report(counts, summary, invariants, injected);
    return {
      seed: opts.seed,
      duration_ms: opts.durationMs,
      load_ms: loadMs,
      clients: opts.clients,
      pause_ms: opts.pauseMs,
      client_timeout_ms: CLIENT_TIMEOUT_MS,
      ok: !failed,
      invariants,
      counts,
      requests: summary.requests,
      cut_by_kill: summary.cut_by_kill,
      statuses: summary.statuses,
      statuses_by_phase: summary.statuses_by_phase,
      phases: summary.phases,
      failures: summary.failures,
      failure_examples: summary.failure_examples,
      faults: injected,
      plan,
    };
  },
});
clearTimeout(watchdog);
if (failed) process.exitCode = 1;

function sample(ids: readonly string[]): string {
  return ids.length === 0 ? '' : `${ids.length}: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}`;
}

function report(
  counts: Record<string, number>,
  summary: ReturnType<ReturnType<typeof createLedger>['summary']>,
  invariants: ReadonlyArray<{ name: string; ok: boolean; detail: string }>,
  injected: readonly Injected[],
): void {
  const out: string[] = [];
  out.push(`faults: ${injected.map((f) => `${f.kind}@${(f.at_ms / 1000).toFixed(0)}s`).join(', ')}`);
  out.push(`requests ${summary.requests} (cut by a kill ${summary.cut_by_kill})`);
  out.push(
    formatTable(
      ['count', 'value'],
      Object.entries(counts).map(([k, v]) => [k, String(v)]),
    ),
  );
  const answers = (counts: Readonly<Record<string, number>> = {}) =>
    Object.entries(counts)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
  out.push(
    formatTable(
      ['operation', 'answers'],
      Object.entries(summary.statuses).map(([op, c]) => [op, answers(c)]),
    ),
  );
  out.push(
    formatTable(
      ['phase', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'answers'],
      Object.entries(summary.phases).map(([p, f]) => [
        p,
        String(f.requests),
        String(f.p50_ms),
        String(f.p99_ms),
        String(f.max_ms),
        answers(summary.statuses_by_phase[p]),
      ]),
    ),
  );
  for (const example of summary.failure_examples.slice(0, 10)) out.push(`failure: ${example}`);
  out.push(
    invariants.map((i) => `${i.ok ? 'ok  ' : 'FAIL'} ${i.name}${i.ok || !i.detail ? '' : `: ${i.detail}`}`).join('\n'),
  );
  process.stdout.write(`${out.join('\n\n')}\n`);
}
