export { type CursorCodec, createCursorCodec } from './cursor.ts';
export { createGroupCommitStore, type GroupCommitOptions, type GroupCommitStats } from './group-commit.ts';
export { isUuid, uuidv7 } from './ids.ts';
export { createIngestService, type IngestRequest, type IngestService } from './ingest-service.ts';
export type {
  CacheLookup,
  Clock,
  IdempotencyClaim,
  IdempotentWriteOutcome,
  PageKey,
  PageLookup,
  RecordCache,
  RecordStore,
} from './ports.ts';
export {
  createQueryService,
  DEFAULT_PAGE_LIMIT,
  type ListParameters,
  MAX_PAGE_LIMIT,
  parseListParameters,
  type QueryService,
} from './query-service.ts';
export {
  batchInputSchema,
  createRecordValidator,
  isPlainObject,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  type RecordSchemaLimits,
  type RecordValidator,
  recordInputSchema,
  UUID_PATTERN,
} from './schema.ts';
export { createSingleFlight, type SingleFlight } from './single-flight.ts';
export { formatUtcTimestamp, normalizeRfc3339, parseRfc3339, RFC3339_PATTERN } from './timestamp.ts';
export type * from './types.ts';
