import type { RecordReader } from './ports.ts';

/**
 * Reads from a replica without losing read-your-writes: a record the replica does not have yet (it has not replayed
 * the write a client was just told about) is looked up on the primary before anyone is told it is absent. A found
 * record is immutable, so the replica's copy is as good as the primary's; only misses cost a second query (ids
 * that never existed, and writes younger than the replica's lag). Lists read the replica as it is.
 */
export function readYourWrites(replica: RecordReader, primary: RecordReader): RecordReader {
  return {
    async findById(id) {
      return (await replica.findById(id)) ?? primary.findById(id);
    },
    list: (query) => replica.list(query),
  };
}
