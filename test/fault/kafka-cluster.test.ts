/**
 * Fault c — issue 12 item 2: three KRaft brokers on loopback (`kafka-cluster`, started here when not running, and
 * stopped again). The ingest bundle's relay creates its topic with replication 3, `min.insync.replicas=2` and
 * `unclean.leader.election.enable=false`, and publishes with acks=all. Under a steady write load the broker leading
 * the most partitions is SIGKILLed; writes go on, and every acknowledged record's event is on the topic afterwards
 * (0 missing). The cluster's start time and memory are printed, since they decide whether this fits a test run.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from '@jest/globals';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { rssMiB, sleep } from '../../scripts/processes.ts';
import { kafkaCluster } from '../../scripts/services/kafka.ts';
import { databaseAt } from '../support/database.ts';
import { createPrivateDatabase, type PrivateDatabase } from '../support/private-database.ts';
import type { SpawnedProcess } from '../support/processes.ts';
import {
  type Bundle,
  consumeRecordIds,
  metricValue,
  missing,
  runClients,
  runId,
  scrapeMetrics,
  services,
  startBundle,
  timedFetch,
  waitForTopic,
} from './support.ts';

const RUN = runId();
const CLIENTS = 4;
const RECORDS_PER_POST = 10;
const BEFORE_KILL_MS = 4_000;
const AFTER_KILL_MS = 8_000;
const spawned: SpawnedProcess[] = [];
let startedCluster = false;
let database: PrivateDatabase | undefined;

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
  await database?.drop();
  if (startedCluster) await services('down', 'kafka-cluster').catch(() => undefined);
}, 60_000);

it('c. acks=all with min.insync.replicas=2: losing one of three brokers under load loses no event', async () => {
  startedCluster = !(await kafkaCluster.running());
  const startMs = await services('up', 'kafka-cluster', 120_000);
  const brokers = kafkaCluster.brokers;
  const rss = [1, 2, 3].map((id) => kafkaCluster.nodePids(id).reduce((sum, pid) => sum + rssMiB(pid), 0));
  console.log(
    `kafka-cluster: ${startedCluster ? `started in ${(startMs / 1000).toFixed(1)} s` : 'already running'}; ` +
      `RSS per broker ${rss.map((r) => `${Math.round(r)} MiB`).join(', ')}`,
  );

  database = await createPrivateDatabase('fc');
  const topic = `fault.c.${RUN}`;
  const source = `fault.c.${RUN}`;
  const ingest: Bundle = await startBundle(
    'ingest',
    {
      DATABASE_URL: database.url,
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: '6',
      KAFKA_TOPIC_REPLICATION: '3',
      K_SERVICE: `fault-c-${RUN}`,
      LOG_LEVEL: 'warn',
    },
    spawned,
  );

  // The first write makes the relay create the topic.
  const acknowledged: string[] = [];
  const failures: string[] = [];
  const post = async () => {
    const ids = Array.from({ length: RECORDS_PER_POST }, () => randomUUID());
    const reply = await timedFetch(`${ingest.url}/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: ids.map((id) => ({ id, source, type: 'fault', payload: { n: 1 } })) }),
    });
    if (reply.status === 201) acknowledged.push(...ids);
    else failures.push(`${reply.status} ${reply.error ?? reply.body.slice(0, 200)}`);
  };
  await post();
  await waitForTopic(topic, 30_000, brokers);

  const admin = new Kafka({ clientId: 'fault-c', brokers: brokers.split(','), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configNames: ['min.insync.replicas', 'unclean.leader.election.enable'],
        },
      ],
    });
    const configs = Object.fromEntries(
      (described.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]),
    );
    expect(configs).toEqual({ 'min.insync.replicas': '2', 'unclean.leader.election.enable': 'false' });
    const before = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions ?? [];
    expect(before.map((p) => p.replicas.length)).toEqual([3, 3, 3, 3, 3, 3]);

    // Load, then the loss of the broker that leads the most partitions, then more load.
    const leaders = new Map<number, number>();
    for (const p of before) leaders.set(p.leader, (leaders.get(p.leader) ?? 0) + 1);
    // FAULT_KAFKA_VICTIM picks a node instead (to repeat a run that failed on a particular one).
    const victim =
      Number(process.env.FAULT_KAFKA_VICTIM) || ([...leaders.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 1);
    const loadStarted = performance.now();
    let killedAt = 0;
    const killer = (async () => {
      await new Promise((resolve) => setTimeout(resolve, BEFORE_KILL_MS));
      for (const pid of kafkaCluster.nodePids(victim)) process.kill(pid, 'SIGKILL');
      killedAt = performance.now();
    })();
    let acknowledgedAtKill = 0;
    await runClients(
      CLIENTS,
      () => killedAt > 0 && performance.now() - killedAt > AFTER_KILL_MS,
      async () => {
        await post();
        if (killedAt === 0) acknowledgedAtKill = acknowledged.length;
      },
    );
    await killer;
    const loadSeconds = (performance.now() - loadStarted) / 1000;

    // The relay first: an empty outbox means every event was acknowledged by two replicas (or is still to come).
    const db = databaseAt(database.url, { poolMax: 1, applicationName: 'fault-tests' });
    let outboxLeft = Number.NaN;
    const drainStarted = performance.now();
    try {
      for (;;) {
        outboxLeft = ((await db.raw('SELECT count(*)::int AS n FROM outbox')).rows as Array<{ n: number }>)[0]?.n ?? 0;
        if (outboxLeft === 0 || performance.now() - drainStarted > 60_000) break;
        await sleep(250);
      }
    } finally {
      await db.destroy();
    }
    const drainSeconds = (performance.now() - drainStarted) / 1000;
    const delivered = await consumeRecordIds(topic, new Set(acknowledged), 90_000, brokers);
    const lost = missing(acknowledged, delivered.seen);
    const after = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions ?? [];
    const metrics = await scrapeMetrics(ingest.url);
    const errors = metricValue(metrics, 'data_service_event_publish_errors_total', {}) ?? Number.NaN;
    console.log(
      `fault kafka-cluster: broker ${victim} (leader of ${leaders.get(victim)} of 6 partitions) SIGKILLed ` +
        `${(BEFORE_KILL_MS / 1000).toFixed(0)} s into ${loadSeconds.toFixed(1)} s of load; ` +
        `acknowledged ${acknowledged.length} (${acknowledged.length - acknowledgedAtKill} after the kill), ` +
        `found ${delivered.seen.size}, lost ${lost.length}, ${delivered.messages - delivered.seen.size} duplicates; ` +
        `relay publish errors ${errors}; outbox ${outboxLeft === 0 ? `empty ${drainSeconds.toFixed(1)} s after the load` : `still ${outboxLeft} rows after 60 s`}; ` +
        `ISR after: ${after.map((p) => p.isr.length).join(',')}`,
    );
    if (lost.length > 0) {
      console.log(`kafka consumer log: ${delivered.logs.slice(-10).join(' | ')}`);
      const relayLog = ingest.proc.stdoutLines().filter((l) => /kafkajs|publish|outbox/.test(l));
      console.log(
        `ingest relay log (${relayLog.length} lines):\n${[...relayLog.slice(0, 8), '…', ...relayLog.slice(-12)].join('\n')}`,
      );
    }
    expect(failures).toEqual([]);
    expect(acknowledged.length - acknowledgedAtKill).toBeGreaterThan(0);
    expect(lost).toEqual([]);
    // The surviving two replicas kept every partition writable: no partition lost its leader.
    expect(after.every((p) => p.leader !== victim && p.leader >= 0)).toBe(true);
  } finally {
    await admin.disconnect();
    // The killed broker back (up starts only the stopped nodes), for whoever uses the cluster next.
    if (!startedCluster) await services('up', 'kafka-cluster', 120_000).catch(() => undefined);
  }
}, 300_000);
