import { type Admin, Kafka, type KafkaConfig as KafkaJsConfig, logLevel, type Producer } from 'kafkajs';
import type { KafkaConfig } from '#lib/config';
import type { Logger } from '#lib/observability';
import type { EventMessage, EventPublisher } from './ports.ts';

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

/** Creates the topic when it is missing (partitions and replication from config); resolves true if it created it. */
export async function ensureTopic(kafka: Kafka, config: KafkaConfig): Promise<boolean> {
  const admin: Admin = kafka.admin();
  await admin.connect();
  try {
    return await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: config.topic,
          numPartitions: config.topicPartitions,
          replicationFactor: config.topicReplicationFactor,
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * The outbox relay's publisher: an idempotent producer (acks=all, one request in flight, so retries neither
 * duplicate nor reorder within a session). The topic is ensured lazily, so a broker that is down at start only
 * delays events.
 */
export function createKafkaPublisher({ config, logger }: KafkaPublisherOptions): EventPublisher {
  const kafka = createKafkaClient({ config, logger });
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  let ready: Promise<void> | undefined;

  const connect = () => {
    ready ??= (async () => {
      await ensureTopic(kafka, config);
      await producer.connect();
    })().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };

  return {
    async publish(messages: readonly EventMessage[]) {
      if (messages.length === 0) return;
      await connect();
      await producer.send({
        topic: config.topic,
        acks: -1,
        messages: messages.map((m) => ({ key: m.key, value: m.value, headers: { ...m.headers } })),
      });
    },
    async check() {
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.describeCluster();
      } finally {
        await admin.disconnect();
      }
    },
    async close() {
      await producer.disconnect();
    },
  };
}
