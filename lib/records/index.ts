export { type CursorCodec, createCursorCodec } from './cursor.ts';
export { createGroupCommitStore, type GroupCommitOptions, type GroupCommitStats } from './group-commit.ts';
export { isUuid, uuidv7 } from './ids.ts';
export { createIngestService, type IngestRequest, type IngestService, notifyingWrites } from './ingest-service.ts';
export { type PageCut, type PageRead, type PageRequest, pageOf, readPage } from './page.ts';
export type {
  ArchiveLocator,
  Caller,
  Clock,
  IdempotencyClaim,
  IdempotentWriteOutcome,
  PageDocument,
  PageKey,
  PageSource,
  RecordDocument,
  RecordReader,
  RecordSource,
  RecordWriter,
  WriteGuard,
  WriteListener,
} from './ports.ts';
export {
  createQueryService,
  documentFromStore,
  type ExportStream,
  etagOf,
  type ListedPage,
  type ListParameters,
  type QueryService,
} from './query-service.ts';
export {
  chooseListDatabase,
  type ListReads,
  type ListRoute,
  primaryLists,
  type ReplicaFreshness,
  readYourWrites,
  replicaLists,
} from './read-your-writes.ts';
export {
  createRecordValidator,
  DEFAULT_PAGE_LIMIT,
  exportQuerySchema,
  idempotencyKeySchema,
  ingestResultSchema,
  isPlainObject,
  listQuerySchema,
  MAX_PAGE_LIMIT,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  parseExportParameters,
  parseListParameters,
  type RecordSchemaLimits,
  type RecordValidator,
  recordPageSchema,
  recordSchemas,
  storedRecordSchema,
  UUID_PATTERN,
} from './schema.ts';
export { formatUtcTimestamp, normalizeRfc3339, parseRfc3339, RFC3339_PATTERN, utcDayOf } from './timestamp.ts';
export type * from './types.ts';
export { type WriteDeadline, writeDeadline } from './write-deadline.ts';
