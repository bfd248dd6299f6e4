/**
 * kafkajs's grouping of a send's messages by partition, in one pass. Its own module copies the partition's array
 * for every message it adds (`[...current, message]`), quadratic in the messages of a partition: a relay round of
 * a few thousand events spent more time there than in encoding them. The bundles swap it in (esbuild.config.mjs).
 */
interface GroupInput<M> {
  readonly topic: string;
  readonly partitionMetadata: readonly unknown[];
  readonly messages: readonly M[];
  readonly partitioner: (args: { topic: string; partitionMetadata: readonly unknown[]; message: M }) => number;
}

export function groupMessagesPerPartition<M>({
  topic,
  partitionMetadata,
  messages,
  partitioner,
}: GroupInput<M>): Record<number, M[]> {
  const groups: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return groups;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const group = groups[partition];
    if (group === undefined) groups[partition] = [message];
    else group.push(message);
  }
  return groups;
}
