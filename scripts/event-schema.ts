/**
 * Writes docs/events/record-created.schema.json, the JSON Schema of the data of each record event on Kafka, from
 * the joi schema that declares it (lib/events/record-event.ts). Run it after changing that schema; the unit test
 * test/unit/event-schema.test.ts fails while the published file differs.
 *
 *   npm run docs:event-schema
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RECORD_EVENT_SCHEMA_FILE, recordEventSchemaText } from '#lib/api';
import { helpFromHeader } from './help.ts';

helpFromHeader(import.meta.url);

const file = resolve(dirname(fileURLToPath(import.meta.url)), '..', RECORD_EVENT_SCHEMA_FILE);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, recordEventSchemaText());
console.log(`wrote ${RECORD_EVENT_SCHEMA_FILE}`);
