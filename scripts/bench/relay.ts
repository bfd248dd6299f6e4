/**
 * `npm run bench:relay`: how fast the outbox backlog of a Kafka outage drains (issue 12), the deployed way — the
 * relay inside `dist/ingest.mjs` with knative/base/settings.env. Kafka is stopped, BENCH_RELAY_EVENTS (40,000)
 * records of ≈ 900-byte payloads are POSTed in batches of 1,000 (with BENCH_RELAY_OVERSIZE (1) events that alone
 * exceed the broker's 1 MiB limit in the middle), Kafka is started again, and the window runs from Kafka serving
 * to an empty outbox. Reported: the drain rate (events / time from the first relayed round to the empty outbox),
 * the end-to-end time (including the relay's backoff before it notices Kafka), and CPU per event of ingest (idle
 * but for its relay), PostgreSQL and the broker. The topic's high watermarks prove every event arrived.
 *
 * RELAY_BATCH_SIZE, RELAY_BATCH_BYTES and RELAY_MAX_REQUEST_BYTES in the environment override the deployed values;
 * BENCH_RELAY_TIMEOUT_SECONDS (300) bounds the wait (`--dist` of an older build shows a backlog that never drains).
 * BENCH_RELAY_PROFILE=1 runs ingest under `node --cpu-prof` and prints its busy time during the drain by module, in
 * µs per event (bench-results/profile-relay.cpuprofile keeps the raw profile).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { helpFromHeader } from '../help.ts';
import { ROOT, sleep } from '../processes.ts';
import { kafka } from '../services/kafka.ts';
import { measure } from './cost.ts';
import { analyse, type CpuProfile } from './cpu-profile.ts';
import { DIST, intEnv, runBench, say } from './lifecycle.ts';
import { formatTable, round } from './report.ts';

helpFromHeader(import.meta.url);

const EVENTS = intEnv('BENCH_RELAY_EVENTS', 40_000);
const OVERSIZE = Number(process.env.BENCH_RELAY_OVERSIZE ?? 1);
const TIMEOUT_SECONDS = intEnv('BENCH_RELAY_TIMEOUT_SECONDS', 300);
const PER_BATCH = 1_000;
const CLIENTS = 2;
const PAYLOAD = { text: 'x'.repeat(880), n: 1 };
const RELAY_OVERRIDES = ['RELAY_BATCH_SIZE', 'RELAY_BATCH_BYTES', 'RELAY_MAX_REQUEST_BYTES'] as const;
const PROFILE = process.env.BENCH_RELAY_PROFILE === '1';
/** The clock of V8's CPU profiles (CLOCK_MONOTONIC, µs), so the drain window can be cut out of one. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

await runBench({
  name: 'relay',
  deadlineSeconds: intEnv('BENCH_DEADLINE_SECONDS', 600),
  async body(ctx) {
    const overrides = Object.fromEntries(
      RELAY_OVERRIDES.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
    );
    const profileDir = join(ctx.tmp, 'cpu-profile');
    const ingest = await ctx.startBundle(
      'ingest',
      ctx.functionEnv({
        BODY_LIMIT_BYTES: String(3 * 1024 * 1024),
        RECORD_PAYLOAD_MAX_BYTES: String(2 * 1024 * 1024),
        ...overrides,
      }),
      PROFILE ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=250'] } : {},
    );
    const db = new pg.Client({ connectionString: ctx.databaseUrl });
    await db.connect();
    const outbox = async () => Number((await db.query('SELECT count(*)::int AS n FROM outbox')).rows[0]?.n ?? 0);
    const post = async (body: unknown) => {
      const response = await fetch(`${ingest.url}/data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (response.status !== 201) throw new Error(`POST answered ${response.status}: ${await response.text()}`);
    };
    const source = `bench-relay-${ctx.runId}`;
    try {
      // Warm: the relay has created the topic and published once before the outage.
      await post({ source, type: 'warm', payload: PAYLOAD });
      for (let i = 0; (await outbox()) > 0; i++) {
        if (i > 200) throw new Error('the warm-up event was not relayed within 20 s');
        await sleep(100);
      }

      say('stopping Kafka; building the backlog');
      await kafka.down();
      let sent = 0;
      let oversizeLeft = OVERSIZE;
      const posting = performance.now();
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (sent < EVENTS) {
            const count = Math.min(PER_BATCH, EVENTS - sent);
            sent += count;
            await post({
              records: Array.from({ length: count }, () => ({ source, type: 'reading', payload: PAYLOAD })),
            });
            if (oversizeLeft > 0 && sent >= EVENTS / 2) {
              oversizeLeft--;
              await post({ source, type: 'oversize', payload: { blob: 'y'.repeat(1_200_000) } });
            }
          }
        }),
      );
      const backlog = await outbox();
      const bytes = Number(
        (await db.query('SELECT sum(octet_length(event))::bigint AS b FROM outbox')).rows[0]?.b ?? 0,
      );
      say(
        `${backlog} events (${(bytes / 1048576).toFixed(1)} MiB) in the outbox after ${((performance.now() - posting) / 1000).toFixed(1)} s`,
      );

      await kafka.up();
      const back = performance.now();
      let first = 0;
      let firstUs = 0;
      let emptyUs = 0;
      const cost = await measure([ingest.process.pid], async () => {
        for (;;) {
          const left = await outbox();
          if (first === 0 && left < backlog) {
            first = performance.now();
            firstUs = nowUs();
          }
          if (left === 0) {
            emptyUs = nowUs();
            return performance.now();
          }
          if (performance.now() - back > TIMEOUT_SECONDS * 1000) {
            throw new Error(`the backlog did not drain within ${TIMEOUT_SECONDS} s: ${left} of ${backlog} events left`);
          }
          await sleep(50);
        }
      });
      const empty = cost.result;
      const drained = backlog - OVERSIZE;
      const deadLetters = Number((await db.query('SELECT count(*)::int AS n FROM outbox_dead_letter')).rows[0]?.n ?? 0);

      const client = new Kafka({
        clientId: 'bench-relay',
        brokers: [ctx.functionEnv().KAFKA_BROKERS ?? ''],
        logLevel: logLevel.NOTHING,
      });
      const admin = client.admin();
      await admin.connect();
      const offsets = await admin.fetchTopicOffsets(ctx.kafkaTopic);
      await admin.disconnect();
      const onTopic = offsets.reduce((sum, p) => sum + Number(p.high), 0) - 1; // minus the warm-up event
      if (onTopic !== drained || deadLetters !== OVERSIZE) {
        throw new Error(
          `expected ${drained} events on the topic and ${OVERSIZE} dead letters; found ${onTopic} and ${deadLetters}`,
        );
      }

      const drainSeconds = (empty - first) / 1000;
      const perEvent = (seconds: number) => round((seconds * 1e6) / drained, 1);
      const result = {
        events: drained,
        backlog_mib: round(bytes / 1048576, 1),
        dead_letters: deadLetters,
        settings: { ...overrides },
        relay_started_after_kafka_back_s: round((first - back) / 1000, 2),
        drain_seconds: round(drainSeconds, 2),
        events_per_second: Math.round(drained / drainSeconds),
        end_to_end_seconds: round((empty - back) / 1000, 2),
        cpu_us_per_event: {
          relay_process: perEvent(cost.cpuSeconds.server),
          postgres: perEvent(cost.cpuSeconds.postgres),
          kafka: perEvent(cost.cpuSeconds.kafka),
          machine_share: perEvent(cost.machineShareSeconds),
        },
        busy_cores: round(cost.busyCores, 2),
        relay_process_peak_rss_mib: round(cost.peakRssMiB, 0),
      };
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      if (PROFILE) {
        await ingest.process.stop(25_000); // the profile is written at exit
        const file = existsSync(profileDir)
          ? readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'))
          : undefined;
        if (file === undefined) throw new Error('ingest wrote no CPU profile');
        mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
        copyFileSync(join(profileDir, file), join(ROOT, 'bench-results', 'profile-relay.cpuprofile'));
        const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
        const { byModule } = analyse(profile, firstUs, emptyUs, DIST);
        const modules = [...byModule].filter(([m]) => m !== '(idle)' && m !== '(root)').sort((a, b) => b[1] - a[1]);
        const busy = modules.reduce((sum, [, us]) => sum + us, 0);
        process.stdout.write(
          `\nRelay (ingest main thread) busy time during the drain by module, ${round(busy / drained, 1)} µs/event:\n${formatTable(
            ['module', 'busy', 'µs/event'],
            modules.slice(0, 15).map(([m, us]) => [m, `${((us / busy) * 100).toFixed(1)}%`, (us / drained).toFixed(1)]),
          )}\n`,
        );
      }
      return result;
    } finally {
      await db.end();
      if (!(await kafka.running())) await kafka.up();
      await ingest.process.stop(25_000);
    }
  },
});
