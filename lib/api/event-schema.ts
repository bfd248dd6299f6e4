/**
 * The published JSON Schema of the record event's data (docs/events/record-created.schema.json), derived from the
 * joi schema the OpenAPI document also shows as RecordCreatedEvent. `npm run docs:event-schema` writes the file and
 * a unit test fails when it differs from what joi derives, so the two cannot drift.
 */
import { RECORD_CREATED_TYPE, recordEventSchema } from '#lib/events';
import { type JsonSchema, joiToJsonSchema } from './json-schema.ts';

/** Where the schema is published, relative to the repository root. */
export const RECORD_EVENT_SCHEMA_FILE = 'docs/events/record-created.schema.json';

/** The standalone JSON Schema 2020-12 document of the data of a `dev.data-service.record.created.v1` event. */
export function buildRecordEventSchema(): JsonSchema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `https://data-service.dev/schemas/${RECORD_CREATED_TYPE}.json`,
    title: RECORD_CREATED_TYPE,
    // No refs: the stored record's shape is inlined, so the file stands alone for consumers' validators.
    ...joiToJsonSchema(recordEventSchema),
  };
}

/** The file's text: two-space JSON with a final newline, as the generator writes it. */
export function recordEventSchemaText(): string {
  return `${JSON.stringify(buildRecordEventSchema(), null, 2)}\n`;
}
