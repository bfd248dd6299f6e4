import { type Logger, startProducerSpan } from '#lib/observability';
import type { EventPublisher, OutboxStore } from './ports.ts';
import { toRecordMessage } from './record-event.ts';

export interface OutboxRelayOptions {
  readonly store: OutboxStore;
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly maxBackoffMs: number;
}

export interface RelayStatus {
  /** False from the first failed publish until the next successful one. */
  readonly brokerReachable: boolean;
  readonly eventsPublished: number;
  readonly publishErrors: number;
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
  const { store, publisher, logger, batchSize, pollIntervalMs, maxBackoffMs } = options;
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let nudged = false;
  let brokerReachable = true;
  let lastContact = Date.now();
  let nudgeTimer: NodeJS.Timeout | undefined;
  let eventsPublished = 0;
  let publishErrors = 0;

  const publishBatch = () =>
    store.relayBatch(batchSize, async (entries) => {
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
        await publisher.publish(messages);
        eventsPublished += messages.length;
      } catch (error) {
        for (const { span } of traces.values()) span?.recordException(error instanceof Error ? error : String(error));
        throw error;
      } finally {
        for (const { span } of traces.values()) span?.end();
      }
    });

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
        const relayed = await publishBatch();
        // An empty outbox proves nothing about the broker: an idle relay asks it directly now and then.
        if (relayed === 0 && (!brokerReachable || Date.now() - lastContact > BROKER_CHECK_MS)) await publisher.check();
        if (relayed > 0 || !brokerReachable || Date.now() - lastContact > BROKER_CHECK_MS) lastContact = Date.now();
        if (!brokerReachable) logger.info('event broker reachable again; relaying the outbox backlog');
        brokerReachable = true;
        backoff = 0;
        if (relayed === batchSize) continue; // more is probably waiting
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
        while (Date.now() < deadline && (await publishBatch()) > 0) {
          // keep draining while rows remain and time allows
        }
      } catch (error) {
        logger.warn({ err: error }, 'final outbox drain failed; the remaining events stay for the next relay');
      }
    },
    status: () => ({ brokerReachable, eventsPublished, publishErrors }),
  };
}
