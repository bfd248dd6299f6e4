export {
  ArchiveVerificationError,
  archiveDay,
  archiveDueDays,
  type DayOutcome,
  dayText,
  MANIFEST_FORMAT,
  type Manifest,
  parseDay,
  type RestoreOutcome,
  restoreDay,
  tableFigures,
} from './archiver.ts';
export { createObjectStore, type ObjectStore } from './object-store.ts';
export { ARCHIVE_SCHEMA, openArchiveFile } from './parquet.ts';
export { type ArchivedRow, microsToIso, type RowFigures } from './row-format.ts';
