/**
 * The chaos soak's final count, once every process serves and every service is up: the outbox drained (bounded
 * wait), the ids stored in PostgreSQL, and the topic read from the beginning up to the high watermarks taken after
 * the drain, counting distinct record ids and duplicates.
 */
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { sleep } from '../processes.ts';

export interface Storage {
  readonly stored: ReadonlySet<string>;
  readonly outboxLeft: number;
  readonly deadLetters: number;
  readonly drainMs: number;
}

/** Waits up to `timeoutMs` for an empty outbox, then reads every stored id. */
export async function countStorage(databaseUrl: string, timeoutMs: number): Promise<Storage> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const count = async (sql: string) => Number((await client.query(sql)).rows[0]?.n ?? 0);
    const began = performance.now();
    let outboxLeft = await count('SELECT count(*)::int AS n FROM outbox');
    while (outboxLeft > 0 && performance.now() - began < timeoutMs) {
      await sleep(250);
      outboxLeft = await count('SELECT count(*)::int AS n FROM outbox');
    }
    const drainMs = performance.now() - began;
    const deadLetters = await count('SELECT count(*)::int AS n FROM outbox_dead_letter');
    const rows = await client.query<{ id: string }>('SELECT id::text AS id FROM records');
    return { stored: new Set(rows.rows.map((row) => row.id)), outboxLeft, deadLetters, drainMs };
  } finally {
    await client.end();
  }
}

export interface OnKafka {
  readonly ids: ReadonlySet<string>;
  readonly messages: number;
  readonly duplicates: number;
  /** Whether every partition was read up to its high watermark within the bound. */
  readonly complete: boolean;
}

/** Reads `topic` from the beginning up to its current high watermarks (within `timeoutMs`). */
export async function countKafka(brokers: string, topic: string, timeoutMs: number): Promise<OnKafka> {
  const kafka = new Kafka({
    clientId: 'data-service-chaos',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 3_000 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const left = new Map<number, bigint>();
  try {
    for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
      if (BigInt(high) > BigInt(low)) left.set(partition, BigInt(high));
    }
  } finally {
    await admin.disconnect();
  }
  const ids = new Set<string>();
  let messages = 0;
  let duplicates = 0;
  if (left.size === 0) return { ids, messages, duplicates, complete: true };
  const consumer = kafka.consumer({ groupId: `data-service-chaos-count-${Date.now()}`, maxBytes: 16 * 1024 * 1024 });
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const high = left.get(batch.partition);
        for (const message of batch.messages) {
          if (high === undefined || BigInt(message.offset) >= high) continue;
          messages++;
          const id = message.key?.toString() ?? '';
          if (ids.has(id)) duplicates++;
          else ids.add(id);
        }
        const last = batch.messages.at(-1);
        if (high !== undefined && last !== undefined && BigInt(last.offset) + 1n >= high) {
          left.delete(batch.partition);
          if (left.size === 0) done();
        }
      },
    });
    // A timer of our own, cleared: a pending sleep would keep the process alive for the whole bound.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return { ids, messages, duplicates, complete: left.size === 0 };
}
