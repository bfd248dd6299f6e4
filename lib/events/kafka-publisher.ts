import {
  type Admin,
  type ConfigResourceTypes,
  Kafka,
  type KafkaConfig as KafkaJsConfig,
  logLevel,
  type Message,
  type PartitionMetadata,
  type Producer,
} from 'kafkajs';
import type { KafkaConfig } from '#lib/config';
import type { Logger } from '#lib/observability';
import { partitionOfKey } from './partitioner.ts';
import {
  type EventMessage,
  type EventPublisher,
  PartialPublishError,
  type PublishOptions,
  type PublishResult,
} from './ports.ts';
import {
  KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
  planProduce,
  RECORD_BATCH_OVERHEAD,
  recordSize,
  type SizedMessage,
} from './record-batch.ts';

// kafkajs's ConfigResourceTypes.TOPIC. Not imported by name: kafkajs is CommonJS, and Node's detection of its
// named exports (cjs-module-lexer) stops at the `...errors` spread in its module.exports, so a process running
// this file unbundled (npm start, npm run relay) would fail to load it.
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

export interface KafkaPublisherOptions {
  readonly config: KafkaConfig;
  readonly logger: Logger;
}

/**
 * A kafkajs client from config: TLS and SASL (PLAIN, SCRAM) when set; kafkajs's own logs go through our logger.
 * MSK IAM needs a custom SASL mechanism (see docs/data-flow.md).
 */
export function createKafkaClient({ config, logger }: KafkaPublisherOptions): Kafka {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  const options: KafkaJsConfig = {
    clientId: config.clientId,
    brokers: [...config.brokers],
    ssl: config.ssl,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    // Bounded: a relay must give up on a dead broker, release its rows and back off, not retry forever.
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) => {
        const { message, ...rest } = log;
        if (level <= logLevel.ERROR) kafkaLogger.warn(rest, message);
        else kafkaLogger.debug(rest, message);
      },
  };
  if (config.sasl) {
    const { mechanism, username, password } = config.sasl;
    // Spelled out per mechanism: kafkajs types SASL options as a union discriminated by `mechanism`.
    options.sasl =
      mechanism === 'plain'
        ? { mechanism, username, password }
        : mechanism === 'scram-sha-256'
          ? { mechanism, username, password }
          : { mechanism, username, password };
  }
  return new Kafka(options);
}

// --- Topic durability -----------------------------------------------------------------------------------------

/** From this replication factor on, the topic must survive one broker loss without losing an acknowledged event. */
export const DURABLE_REPLICATION = 3;
/** With acks=all, a write is acknowledged once this many replicas have it; one broker may then fail. */
export const REQUIRED_MIN_INSYNC_REPLICAS = 2;

/** What the durability rules are judged on. */
export interface TopicDurability {
  readonly replicationFactor: number;
  /** Undefined when the broker did not let us read the topic's configuration (DescribeConfigs denied). */
  readonly minInsyncReplicas: number | undefined;
  readonly uncleanLeaderElection: boolean | undefined;
}

export interface TopicFinding {
  readonly level: 'info' | 'warn';
  readonly message: string;
}

/**
 * The configuration a topic is created with: with replication ≥ 3, `min.insync.replicas=2` (acks=all then means
 * two copies, and one broker may be lost without stopping writes) and never an out-of-sync leader
 * (`unclean.leader.election.enable=false`, which would silently drop acknowledged events). Below 3 replicas,
 * min.insync.replicas=2 would stop every write while one broker is down, so it stays 1 there.
 */
export function requiredTopicConfig(replicationFactor: number): Readonly<Record<string, string>> {
  return {
    'min.insync.replicas': String(replicationFactor >= DURABLE_REPLICATION ? REQUIRED_MIN_INSYNC_REPLICAS : 1),
    'unclean.leader.election.enable': 'false',
  };
}

/**
 * Judges a topic's durability settings: a finding for each that differs from what the relay requires, and what it
 * would require where replication is too low to ask for it. Never fatal: the operator owns the topic, and a
 * single-broker test or development cluster must still work.
 */
export function durabilityFindings(
  topic: string,
  configuredReplication: number,
  actual: TopicDurability,
): TopicFinding[] {
  const findings: TopicFinding[] = [];
  const rf = actual.replicationFactor;
  const fix = (settings: string) =>
    `kafka-configs.sh --bootstrap-server … --alter --entity-type topics --entity-name ${topic} --add-config ${settings}`;
  if (rf !== configuredReplication) {
    findings.push({
      level: 'warn',
      message: `topic ${topic} has replication factor ${rf}, KAFKA_TOPIC_REPLICATION says ${configuredReplication}; the topic's is what counts`,
    });
  }
  if (rf < DURABLE_REPLICATION) {
    findings.push({
      level: rf === 1 ? 'info' : 'warn',
      message:
        `topic ${topic} has replication factor ${rf}: acks=all waits for ${rf === 1 ? 'the leader only' : `${rf} replicas`} and ` +
        `a lost broker can lose acknowledged events; with replication ≥ ${DURABLE_REPLICATION} the relay requires ` +
        `min.insync.replicas=${REQUIRED_MIN_INSYNC_REPLICAS} and unclean.leader.election.enable=false`,
    });
  } else if (actual.minInsyncReplicas !== undefined && actual.minInsyncReplicas !== REQUIRED_MIN_INSYNC_REPLICAS) {
    findings.push({
      level: 'warn',
      message:
        actual.minInsyncReplicas < REQUIRED_MIN_INSYNC_REPLICAS
          ? `topic ${topic} (replication ${rf}) has min.insync.replicas=${actual.minInsyncReplicas}: acks=all may be acknowledged by one replica alone, whose loss loses the event; required ${REQUIRED_MIN_INSYNC_REPLICAS} (${fix(`min.insync.replicas=${REQUIRED_MIN_INSYNC_REPLICAS}`)})`
          : `topic ${topic} (replication ${rf}) has min.insync.replicas=${actual.minInsyncReplicas}: ${rf - actual.minInsyncReplicas < 1 ? 'any' : 'a second'} broker loss stops every write; required ${REQUIRED_MIN_INSYNC_REPLICAS} (${fix(`min.insync.replicas=${REQUIRED_MIN_INSYNC_REPLICAS}`)})`,
    });
  }
  if (actual.uncleanLeaderElection === true) {
    findings.push({
      level: 'warn',
      message: `topic ${topic} has unclean.leader.election.enable=true: an out-of-sync replica may become leader and drop acknowledged events; required false (${fix('unclean.leader.election.enable=false')})`,
    });
  }
  if (actual.minInsyncReplicas === undefined || actual.uncleanLeaderElection === undefined) {
    findings.push({
      level: 'warn',
      message: `the broker did not describe topic ${topic}'s configuration (DescribeConfigs not allowed?): min.insync.replicas and unclean.leader.election.enable are unverified`,
    });
  }
  return findings;
}

/** What the relay knows of its topic: partitions (for the partitioner), its size limit and durability. */
export interface TopicState {
  readonly partitionMetadata: PartitionMetadata[];
  /** The topic's `max.message.bytes` (the broker's `message.max.bytes` unless overridden); undefined if unread. */
  readonly maxMessageBytes: number | undefined;
  readonly durability: TopicDurability;
}

const TOPIC_CONFIGS = ['max.message.bytes', 'min.insync.replicas', 'unclean.leader.election.enable'];

/** Reads the topic's partitions and the configuration the relay depends on (DescribeConfigs may be denied). */
export async function readTopicState(admin: Admin, topic: string): Promise<TopicState> {
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  const partitionMetadata = metadata.topics.find((t) => t.name === topic)?.partitions ?? [];
  if (partitionMetadata.length === 0) throw new Error(`topic ${topic} has no partitions in the broker's metadata`);
  const configs = new Map<string, string>();
  try {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: TOPIC_CONFIGS }],
    });
    for (const entry of described.resources[0]?.configEntries ?? []) configs.set(entry.configName, entry.configValue);
  } catch {
    // Reported as a finding (unverified settings) and the default size limit applies; the relay still runs.
  }
  const number = (name: string) => (configs.has(name) ? Number(configs.get(name)) : undefined);
  const unclean = configs.get('unclean.leader.election.enable');
  return {
    partitionMetadata,
    maxMessageBytes: number('max.message.bytes'),
    durability: {
      replicationFactor: Math.min(...partitionMetadata.map((p) => p.replicas.length)),
      minInsyncReplicas: number('min.insync.replicas'),
      uncleanLeaderElection: unclean === undefined ? undefined : unclean === 'true',
    },
  };
}

/**
 * Creates the topic when it is missing (partitions, replication and the required durability settings from
 * config), then reads it back and logs every way its durability differs from what the relay requires.
 */
export async function prepareTopic(
  admin: Admin,
  config: KafkaConfig,
  logger?: Logger,
): Promise<TopicState & { readonly created: boolean; readonly findings: readonly TopicFinding[] }> {
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic: config.topic,
        numPartitions: config.topicPartitions,
        replicationFactor: config.topicReplicationFactor,
        configEntries: Object.entries(requiredTopicConfig(config.topicReplicationFactor)).map(([name, value]) => ({
          name,
          value,
        })),
      },
    ],
  });
  const state = await readTopicState(admin, config.topic);
  const findings = durabilityFindings(config.topic, config.topicReplicationFactor, state.durability);
  for (const { level, message } of findings) logger?.[level]({ topic: config.topic, ...state.durability }, message);
  return { ...state, created, findings };
}

async function withAdmin<T>(kafka: Kafka, task: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await task(admin);
  } finally {
    await admin.disconnect();
  }
}

/** Creates the topic when it is missing and verifies its durability (see `prepareTopic`); true if it created it. */
export async function ensureTopic(kafka: Kafka, config: KafkaConfig, logger?: Logger): Promise<boolean> {
  return (await withAdmin(kafka, (admin) => prepareTopic(admin, config, logger))).created;
}

// --- Publishing ---------------------------------------------------------------------------------------------------

/** Partitions may be added to a live topic; the relay re-reads them (and the size limit) this often. */
const TOPIC_REFRESH_MS = 60_000;

const isMessageTooLarge = (error: unknown): boolean => {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    if ((e as { type?: unknown }).type === 'MESSAGE_TOO_LARGE') return true;
    e = (e as { originalError?: unknown }).originalError ?? e.cause;
  }
  return false;
};

export interface KafkaPublisherStatus {
  /** The per-partition batch limit the last publish used. */
  readonly batchLimitBytes: number;
  /** Sends the broker refused as too large although the plan said they fit (then split further). */
  readonly tooLargeSplits: number;
}

/**
 * The outbox relay's publisher: an idempotent producer (acks=all, one request in flight, so retries neither
 * duplicate nor reorder within a session). The topic is ensured lazily, so a broker that is down at start only
 * delays events.
 *
 * Each message's partition is chosen here, with kafkajs's DefaultPartitioner (murmur2 of the key, as Java's
 * producer) on the topic's partitions, and sent explicitly: the relay then knows each partition's batch and keeps
 * it under the broker's limit. A record id always maps to one partition and its batches go in claim order, one
 * send at a time, so the events of one record keep their order.
 */
export function createKafkaPublisher({
  config,
  logger,
}: KafkaPublisherOptions): EventPublisher & { status(): KafkaPublisherStatus } {
  const kafka = createKafkaClient({ config, logger });
  const newProducer = (): Producer =>
    kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Every message carries the partition publish() chose (partitionOfKey, the Java client's choice).
      createPartitioner:
        () =>
        ({ message, partitionMetadata }) =>
          message.partition ?? partitionOfKey(message.key ?? '', partitionMetadata.length),
    });
  let producer = newProducer();
  /**
   * After a failed send the idempotent session cannot be trusted: kafkajs rolls its sequence numbers back even when
   * the broker may have appended the batch (a timeout, a leader lost mid-request), and the next send then hits
   * OUT_OF_ORDER_SEQUENCE_NUMBER forever (tulios/kafkajs#598; seen here when one of three brokers was killed), or,
   * worse, reuses a written batch's sequence range for other events, which the broker would drop as duplicates.
   * A fresh producer gets a new producer id; the relay re-sends what was not acknowledged (at least once: consumers
   * dedupe by key).
   */
  const resetProducer = () => {
    const old = producer;
    producer = newProducer();
    ready = undefined;
    void old.disconnect().catch(() => undefined);
  };
  let ready: Promise<void> | undefined;
  let topic: { state: TopicState; at: number } | undefined;
  let batchLimitBytes = KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
  let tooLargeSplits = 0;

  const connect = () => {
    ready ??= (async () => {
      const state = await withAdmin(kafka, (admin) => prepareTopic(admin, config, logger));
      if (state.maxMessageBytes === undefined) {
        logger.warn(
          { topic: config.topic, assumed: KAFKA_DEFAULT_MAX_MESSAGE_BYTES },
          "could not read the topic's max.message.bytes; assuming Kafka's default (set RELAY_MAX_REQUEST_BYTES if it is lower)",
        );
      }
      topic = { state, at: Date.now() };
      await producer.connect();
    })().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };

  const topicState = async (): Promise<TopicState> => {
    await connect();
    if (topic === undefined || Date.now() - topic.at > TOPIC_REFRESH_MS) {
      topic = { state: await withAdmin(kafka, (admin) => readTopicState(admin, config.topic)), at: Date.now() };
    }
    return topic.state;
  };

  const toKafka = (message: EventMessage, value: Buffer, partition: number): Message => ({
    key: message.key,
    value,
    headers: { ...message.headers },
    partition,
  });

  return {
    async publish(messages: readonly EventMessage[], options: PublishOptions = {}): Promise<PublishResult> {
      if (messages.length === 0) return { acknowledged: [], tooLarge: [] };
      const state = await topicState();
      const brokerLimit = state.maxMessageBytes ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
      const limit = Math.min(brokerLimit, options.maxBatchBytes ?? brokerLimit);
      batchLimitBytes = limit;
      const { partitionMetadata } = state;
      // Each event's JSON encoded to UTF-8 once: sized from these bytes, and copied as they are into its record.
      const values = messages.map((message) => Buffer.from(message.value));
      const sized: SizedMessage[] = messages.map((message, index) => ({
        index,
        partition: partitionOfKey(message.key, partitionMetadata.length),
        bytes: recordSize({ ...message, value: values[index] as Buffer }),
      }));
      const plan = planProduce(sized, limit);
      const acknowledged: number[] = [];
      const tooLarge = plan.tooLarge.map(({ index, bytes }) => ({
        index,
        bytes: bytes + RECORD_BATCH_OVERHEAD,
        limit,
      }));

      const send = async (batch: readonly SizedMessage[]): Promise<void> => {
        try {
          await producer.send({
            topic: config.topic,
            acks: -1,
            messages: batch.map(({ index, partition }) =>
              toKafka(messages[index] as EventMessage, values[index] as Buffer, partition),
            ),
          });
          for (const { index } of batch) acknowledged.push(index);
        } catch (error) {
          if (!isMessageTooLarge(error)) throw error;
          // A clean refusal: the same partition batches go again with the same sequence numbers, which the broker
          // dedupes for partitions it had appended. The plan said it fits: the topic's limit was lowered since we
          // read it, or a proxy counts otherwise. Split until the broker takes it; a message refused alone is a dead
          // letter. Order within a partition holds: the halves go one after the other. Re-read the limit next time.
          tooLargeSplits++;
          if (topic !== undefined) topic.at = 0;
          if (batch.length === 1) {
            const [only] = batch as [SizedMessage];
            tooLarge.push({ index: only.index, bytes: only.bytes + RECORD_BATCH_OVERHEAD, limit });
            return;
          }
          const partitions = [...new Set(batch.map((m) => m.partition))];
          const parts =
            partitions.length > 1
              ? partitions.map((p) => batch.filter((m) => m.partition === p))
              : [batch.slice(0, batch.length >> 1), batch.slice(batch.length >> 1)];
          for (const part of parts) await send(part);
        }
      };

      try {
        for (const wave of plan.waves) await send(wave);
      } catch (error) {
        resetProducer();
        if (acknowledged.length > 0 || tooLarge.length > 0) {
          throw new PartialPublishError({ acknowledged, tooLarge }, error);
        }
        throw error;
      }
      return { acknowledged, tooLarge };
    },
    async check() {
      await withAdmin(kafka, (admin) => admin.describeCluster());
    },
    async close() {
      await producer.disconnect();
    },
    status: () => ({ batchLimitBytes, tooLargeSplits }),
  };
}
