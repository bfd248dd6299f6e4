/** Reads the Prometheus text the functions serve at `/metrics`; k6-independent. */

export interface ResidentMemory {
  /** The `service` label (the Knative service, or `ingest`/`query` locally). */
  readonly service: string;
  readonly bytes: number;
}

/** Every `process_resident_memory_bytes` sample with its `service` label. */
export function residentMemory(text: string): ResidentMemory[] {
  const samples: ResidentMemory[] = [];
  for (const line of text.split('\n')) {
    const match = /^process_resident_memory_bytes(?:\{([^}]*)\})?\s+([0-9.eE+]+)\s*$/.exec(line.trim());
    if (match === null) continue;
    const service = /(?:^|,)service="([^"]*)"/.exec(match[1] ?? '')?.[1] ?? 'unknown';
    samples.push({ service, bytes: Number(match[2]) });
  }
  return samples;
}

/** `before → after (+x %)` per service, for the end of a soak. */
export function describeMemoryDrift(before: readonly ResidentMemory[], after: readonly ResidentMemory[]): string[] {
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return after.map(({ service, bytes }) => {
    const first = before.find((sample) => sample.service === service);
    if (first === undefined) return `${service}: RSS ${mib(bytes)} (no sample at the start)`;
    const change = ((bytes - first.bytes) / first.bytes) * 100;
    return `${service}: RSS ${mib(first.bytes)} → ${mib(bytes)} (${change >= 0 ? '+' : ''}${change.toFixed(1)} %)`;
  });
}
