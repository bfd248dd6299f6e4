import { type Logger, startProducerSpan } from '#lib/observability';
import {
  type DeadLetter,
  type EventPublisher,
  type OutboxEntry,
  type OutboxStore,
  PartialPublishError,
  PartialRelayError,
  type PublishResult,
  type RelayOutcome,
} from './ports.ts';
import { toRecordMessage } from './record-event.ts';

export interface OutboxRelayOptions {
  readonly store: OutboxStore;
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  /** Rows claimed per round. */
  readonly batchSize: number;
  /** Bytes of event text claimed per round (the claim stops at the event that crosses it). */
  readonly batchBytes: number;
  /** A cap of one partition's record batch below the broker's limit; undefined: the broker's limit alone. */
  readonly maxRequestBytes?: number | undefined;
  readonly pollIntervalMs: number;
  readonly maxBackoffMs: number;
}

export interface RelayStatus {
  /** False from the first failed publish until the next successful one. */
  readonly brokerReachable: boolean;
  readonly eventsPublished: number;
  readonly publishErrors: number;
  /** Events moved to the dead-letter table because alone they exceed the broker's limit. */
  readonly eventsDeadLettered: number;
}

export interface OutboxRelay {
  start(): void;
  /** Wakes an idle relay: called after a commit, so events leave within milliseconds rather than a poll interval. */
  nudge(): void;
  /** Stops after the batch in flight, then publishes what is left for up to `drainMs` (rows stay for the next relay). */
  stop(drainMs?: number): Promise<void>;
  status(): RelayStatus;
}

/**
 * The transactional outbox's relay: claims committed outbox rows, publishes each row's ready event, and deletes
 * the rows only after the broker acknowledged. Several relays can run at once (rows are claimed with
 * SKIP LOCKED). A broker outage never touches ingest: rows wait, the relay backs off, and the backlog drains when
 * the broker returns.
 */
const BROKER_CHECK_MS = 30_000;
// Long enough that under load one send carries the events of many commits, short enough to stay invisible to consumers.
const NUDGE_DELAY_MS = 25;

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { store, publisher, logger, batchSize, batchBytes, maxRequestBytes, pollIntervalMs, maxBackoffMs } = options;
  const limits = { rows: batchSize, bytes: batchBytes };
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let nudged = false;
  let brokerReachable = true;
  let lastContact = Date.now();
  let nudgeTimer: NodeJS.Timeout | undefined;
  let eventsPublished = 0;
  let publishErrors = 0;
  let eventsDeadLettered = 0;

  /** The store's view of a publish result: outbox ids acknowledged, and the dead letters with why. */
  const outcomeOf = (entries: readonly OutboxEntry[], result: PublishResult): RelayOutcome => {
    const deadLetters: DeadLetter[] = result.tooLarge.map(({ index, bytes, limit }) => ({
      entry: entries[index] as OutboxEntry,
      bytes,
      reason: `event of ${bytes} bytes as a record batch exceeds the topic's limit of ${limit} bytes`,
    }));
    for (const { entry, bytes, reason } of deadLetters) {
      // Loud, once per event: it never reaches consumers unless an operator raises the limit and replays it.
      logger.error(
        { outboxId: entry.id, recordId: entry.recordId, bytes },
        `event moved to outbox_dead_letter: ${reason}`,
      );
    }
    return { acknowledged: result.acknowledged.map((i) => (entries[i] as OutboxEntry).id), deadLetters };
  };

  const publishBatch = async (): Promise<{ relayed: number; full: boolean }> => {
    const round = await store
      .relayBatch(limits, async (entries) => {
        // One producer span per originating trace, so each write's trace continues into Kafka and its consumers.
        const traces = new Map<string, ReturnType<typeof startProducerSpan>>();
        const messages = entries.map((entry) => {
          const key = entry.trace ?? '';
          let produced = traces.get(key);
          if (produced === undefined) {
            produced = startProducerSpan('records publish', entry.trace ?? undefined, { 'messaging.system': 'kafka' });
            traces.set(key, produced);
          }
          const message = toRecordMessage(entry);
          return { ...message, headers: { ...message.headers, ...produced.headers } };
        });
        try {
          return outcomeOf(entries, await publisher.publish(messages, { maxBatchBytes: maxRequestBytes }));
        } catch (error) {
          for (const { span } of traces.values()) span?.recordException(error instanceof Error ? error : String(error));
          // What was acknowledged before the failure is deleted all the same; the rest is released for a retry.
          if (error instanceof PartialPublishError)
            throw new PartialRelayError(outcomeOf(entries, error.result), error.cause);
          throw error;
        } finally {
          for (const { span } of traces.values()) span?.end();
        }
      })
      .catch((error: unknown) => {
        if (error instanceof PartialRelayError) {
          eventsPublished += error.outcome.acknowledged.length;
          eventsDeadLettered += error.outcome.deadLetters.length;
          throw error.cause;
        }
        throw error;
      });
    eventsPublished += round.published;
    eventsDeadLettered += round.deadLettered;
    return { relayed: round.claimed, full: round.full };
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (nudged || !running) {
        nudged = false;
        return resolve();
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        nudged = false;
        resolve();
      }
      wake = done;
    });

  async function run(): Promise<void> {
    let backoff = 0;
    while (running) {
      try {
        const { relayed, full } = await publishBatch();
        // An empty outbox proves nothing about the broker: an idle relay asks it directly now and then.
        if (relayed === 0 && (!brokerReachable || Date.now() - lastContact > BROKER_CHECK_MS)) await publisher.check();
        if (relayed > 0 || !brokerReachable || Date.now() - lastContact > BROKER_CHECK_MS) lastContact = Date.now();
        if (!brokerReachable) logger.info('event broker reachable again; relaying the outbox backlog');
        brokerReachable = true;
        backoff = 0;
        if (full) continue; // the claim stopped at a limit: more is probably waiting
        await sleep(pollIntervalMs);
      } catch (error) {
        publishErrors++;
        if (brokerReachable) logger.warn({ err: error }, 'publishing outbox events failed; events wait in the outbox');
        brokerReachable = false;
        backoff = Math.min(maxBackoffMs, backoff === 0 ? 100 : backoff * 2);
        await sleep(backoff);
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    nudge() {
      // Coalesced: under load a wake per commit would publish tiny batches back to back.
      if (nudgeTimer !== undefined) return;
      nudgeTimer = setTimeout(() => {
        nudgeTimer = undefined;
        nudged = true;
        wake?.();
      }, NUDGE_DELAY_MS);
      nudgeTimer.unref();
    },
    async stop(drainMs = 0) {
      running = false;
      clearTimeout(nudgeTimer);
      wake?.();
      await loop;
      const deadline = Date.now() + drainMs;
      try {
        while (Date.now() < deadline && (await publishBatch()).relayed > 0) {
          // keep draining while rows remain and time allows
        }
      } catch (error) {
        logger.warn({ err: error }, 'final outbox drain failed; the remaining events stay for the next relay');
      }
    },
    status: () => ({ brokerReachable, eventsPublished, publishErrors, eventsDeadLettered }),
  };
}
