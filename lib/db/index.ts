export { type ArchiveStatus, archivedDayOf, archiveStatus, dueDays } from './archive-status.ts';
export {
  createDatabase,
  createDatabaseProbe,
  type Database,
  type DatabaseOptions,
  databaseNameOf,
  pingDatabase,
  poolStats,
} from './database.ts';
export { guardDatabase, toDatabaseError } from './errors.ts';
export { migrateToLatest, rollbackAll } from './migrator.ts';
export { createOutboxRepository } from './outbox-repository.ts';
export {
  createWindowPartitions,
  describeRetention,
  listPartitions,
  MaintenancePrivilegeError,
  type MaintenanceReport,
  maintainPartitions,
  type PartitionPlan,
  partitionName,
  partitionPlanFrom,
  schedulePartitionMaintenance,
} from './partitions.ts';
export { createPreparedStatements, type PreparedStatements } from './prepared.ts';
export { createRecordReader, createRecordWriter, type RecordRepositoryOptions } from './record-repository.ts';
export {
  createLagTracker,
  createReplicaLagProbe,
  type LagSample,
  type LagTracker,
  parseLsn,
  type ReplicaLagProbe,
} from './replica-lag.ts';
