import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  /** Registers a dependency whose health is read at scrape time (1 up, 0 down). */
  dependency(name: string, isUp: () => boolean): void;
  /** Registers counters read from a source at scrape time (cumulative values the source keeps). */
  cacheRequests(read: () => { hits: number; misses: number; skipped: number }): void;
  /** Registers the outbox backlog, read (and cached) at scrape time. */
  outbox(read: () => Promise<{ rows: number; oldestAgeMs: number }>): void;
  relay(read: () => { published: number; errors: number }): void;
}

const PREFIX = 'data_service_';

/**
 * The function's Prometheus registry: process defaults plus health and data-flow series that are read from
 * their owners at scrape time, so the hot path pays nothing for them.
 */
export function createMetrics(labels: { service: string; revision: string }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry });

  const dependencies = new Map<string, () => boolean>();
  new Gauge({
    name: `${PREFIX}dependency_up`,
    help: 'Whether a backing service is reachable (1) or not (0); Redis and Kafka down mean degraded, not unready.',
    labelNames: ['dependency'],
    registers: [registry],
    collect() {
      for (const [name, isUp] of dependencies) this.set({ dependency: name }, isUp() ? 1 : 0);
    },
  });

  return {
    registry,
    dependency: (name, isUp) => {
      dependencies.set(name, isUp);
    },
    cacheRequests(read) {
      new Counter({
        name: `${PREFIX}cache_requests_total`,
        help: 'Cache lookups by result: hit (record, absence or page found), miss, skipped (Redis down or breaker open).',
        labelNames: ['result'],
        registers: [registry],
        collect() {
          const { hits, misses, skipped } = read();
          this.reset();
          this.inc({ result: 'hit' }, hits);
          this.inc({ result: 'miss' }, misses);
          this.inc({ result: 'skipped' }, skipped);
        },
      });
    },
    outbox(read) {
      let last = { rows: 0, oldestAgeMs: 0 };
      let refreshed: { at: number; done: Promise<void> } | undefined;
      // Both gauges are collected in parallel by one scrape; they share one query per second.
      const refresh = (): Promise<void> => {
        if (refreshed === undefined || Date.now() - refreshed.at > 1_000) {
          refreshed = {
            at: Date.now(),
            done: read().then(
              (value) => {
                last = value;
              },
              () => undefined,
            ),
          };
        }
        return refreshed.done;
      };
      new Gauge({
        name: `${PREFIX}outbox_backlog_rows`,
        help: 'Committed writes whose events are not yet acknowledged by Kafka.',
        registers: [registry],
        async collect() {
          await refresh();
          this.set(last.rows);
        },
      });
      new Gauge({
        name: `${PREFIX}outbox_oldest_age_seconds`,
        help: 'Age of the oldest unpublished outbox row: the event publish lag.',
        registers: [registry],
        async collect() {
          await refresh();
          this.set(last.oldestAgeMs / 1000);
        },
      });
    },
    relay(read) {
      new Counter({
        name: `${PREFIX}events_published_total`,
        help: 'Record events acknowledged by Kafka.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read().published);
        },
      });
      new Counter({
        name: `${PREFIX}event_publish_errors_total`,
        help: 'Failed attempts to publish an outbox batch to Kafka.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read().errors);
        },
      });
    },
  };
}
