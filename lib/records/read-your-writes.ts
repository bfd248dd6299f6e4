import type { RecordReader } from './ports.ts';

/**
 * Reads from a replica without losing read-your-writes: a record the replica does not have yet (it has not replayed
 * the write a client was just told about) is looked up on the primary before anyone is told it is absent. A found
 * record is immutable, so the replica's copy is as good as the primary's; only misses cost a second query (ids
 * that never existed, and writes younger than the replica's lag). Lists read the replica as it is; see
 * `replicaLists` for when they read the primary instead.
 */
export function readYourWrites(replica: RecordReader, primary: RecordReader): RecordReader {
  return {
    async findById(id) {
      return (await replica.findById(id)) ?? primary.findById(id);
    },
    list: (query) => replica.list(query),
  };
}

/** What the query side knows of a replica's lag, kept fresh off the request path (lib/db's lag probe). */
export interface ReplicaFreshness {
  /** Seconds a read of the replica now may trail the primary; undefined when not known. */
  boundSeconds(): number | undefined;
  /** Whether the primary answered the last probe. */
  primaryReachable(): boolean;
}

/** Where one list or export reads, and how far behind the primary its answer may be (undefined: not known). */
export interface ListRoute {
  readonly reader: RecordReader;
  readonly database: 'primary' | 'replica';
  /** Asked once the read is done, so the bound covers the time the read took. */
  stalenessSeconds(): number | undefined;
}

/** Picks the database of each list and export. */
export interface ListReads {
  route(): ListRoute;
  /** Lists and exports routed to each database since start, for metrics. */
  counts(): { readonly primary: number; readonly replica: number };
}

/**
 * The rule for lists over a replica: the replica while its lag bound is known and at most `maxStalenessSeconds`;
 * the primary when the bound is larger or unknown (the probe failed or has not answered yet), unless the primary
 * did not answer the last probe either — then the replica, as stale as it is, beats a 503 from the primary.
 */
export function chooseListDatabase(
  boundSeconds: number | undefined,
  primaryReachable: boolean,
  maxStalenessSeconds: number,
): 'primary' | 'replica' {
  if (boundSeconds !== undefined && boundSeconds <= maxStalenessSeconds) return 'replica';
  return primaryReachable ? 'primary' : 'replica';
}

/** Lists over a replica and its primary, routed by `chooseListDatabase` on the probe's latest figures. */
export function replicaLists(
  replica: RecordReader,
  primary: RecordReader,
  freshness: ReplicaFreshness,
  maxStalenessSeconds: number,
): ListReads {
  const counts = { primary: 0, replica: 0 };
  const fromPrimary: ListRoute = { reader: primary, database: 'primary', stalenessSeconds: () => 0 };
  const fromReplica: ListRoute = { reader: replica, database: 'replica', stalenessSeconds: freshness.boundSeconds };
  return {
    route() {
      const database = chooseListDatabase(freshness.boundSeconds(), freshness.primaryReachable(), maxStalenessSeconds);
      counts[database]++;
      return database === 'primary' ? fromPrimary : fromReplica;
    },
    counts: () => counts,
  };
}

/** Lists of a deployment without a replica: the primary, current by definition. */
export function primaryLists(primary: RecordReader): ListReads {
  const counts = { primary: 0, replica: 0 };
  const route: ListRoute = { reader: primary, database: 'primary', stalenessSeconds: () => 0 };
  return {
    route() {
      counts.primary++;
      return route;
    },
    counts: () => counts,
  };
}
