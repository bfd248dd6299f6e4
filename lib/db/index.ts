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
  listPartitions,
  type MaintenanceReport,
  maintainPartitions,
  type PartitionPlan,
  partitionName,
  partitionPlanFrom,
  schedulePartitionMaintenance,
} from './partitions.ts';
export { createRecordRepository, type RecordRepositoryOptions } from './record-repository.ts';
