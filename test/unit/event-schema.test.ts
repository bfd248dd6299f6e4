import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import Ajv2020 from 'ajv/dist/2020.js';
import { RECORD_EVENT_SCHEMA_FILE, recordEventSchemaText } from '#lib/api';
import { recordEventSchema } from '#lib/events';

const published = readFileSync(new URL(`../../${RECORD_EVENT_SCHEMA_FILE}`, import.meta.url), 'utf8');

const event = {
  version: 1,
  event: 'record.created',
  record: {
    id: '0190f3d2-7c1e-7a3b-9c4d-5e6f7a8b9c0d',
    source: 'sensor-1',
    type: 'reading',
    timestamp: '2026-12-03T06:58:20.123Z',
    payload: { celsius: 21.5 },
    received_at: '2026-12-03T06:58:20.456789Z',
  },
};

describe(RECORD_EVENT_SCHEMA_FILE, () => {
  it('is what the joi schema derives (run `npm run docs:event-schema` after changing it)', () => {
    // Compared as JSON: the formatter (biome) may lay the file out otherwise than JSON.stringify.
    expect(JSON.parse(published)).toEqual(JSON.parse(recordEventSchemaText()));
  });

  it('agrees with joi on a valid event and on each kind of invalid one', () => {
    // Formats unchecked, as a consumer without ajv-formats would; the patterns still hold ids and names.
    const ajv = new Ajv2020.default({ strict: false, validateFormats: false });
    const validate = ajv.compile(JSON.parse(published) as object);
    const cases: unknown[] = [
      event,
      { ...event, version: 2 },
      { ...event, event: 'record.deleted' },
      { ...event, extra: true },
      { version: 1, event: 'record.created' },
      { ...event, record: { ...event.record, id: 'not-a-uuid' } },
      { ...event, record: { ...event.record, received_at: undefined } },
      { ...event, record: { ...event.record, payload: [] } },
      { ...event, record: { ...event.record, source: 'has space' } },
    ].map((value) => JSON.parse(JSON.stringify(value)));
    const verdicts = cases.map((value) => ({
      ajv: validate(value),
      joi: recordEventSchema.validate(value, { convert: false }).error === undefined,
    }));
    expect(verdicts[0]).toEqual({ ajv: true, joi: true });
    for (const verdict of verdicts.slice(1)) expect(verdict).toEqual({ ajv: false, joi: false });
  });
});
