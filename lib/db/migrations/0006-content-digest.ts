import type { Knex } from 'knex';

/**
 * A client id names one content. The registry keeps a digest of what was first stored under a client-supplied id
 * (source, type, payload, and the timestamp when the client gave one), so a later write of the same id with other
 * content is refused (409 `id-conflict`) instead of answering `duplicate` and dropping it without a word.
 *
 * - The digest is computed by PostgreSQL from the stored values: jsonb's text is canonical, so the same payload
 *   with its keys in another order or other whitespace is the same content; timestamps compare as instants.
 * - It is 16 bytes of SHA-256: the registry holds billions of ids, and finding another content with the same
 *   128 bits is out of reach. Ids the service generated (UUIDv7) and ids stored before this migration have none.
 * - `ds_insert_records` claims the ids and inserts, as before, in one statement; then, only when some id was not
 *   claimed, a second statement — with its own snapshot, so it also sees a concurrent writer that won the id — compares
 *   digests and raises SQLSTATE DS409 naming the conflicting ids, which undoes the whole write. One round trip.
 * - `ds_find_record_source` is `ds_find_record` with the record's source, which every read checks access on.
 */
export async function up(db: Knex): Promise<void> {
  // Nullable and without a default: a catalogue change only, whatever the size of the registry.
  await db.raw('ALTER TABLE record_ids ADD COLUMN digest bytea');
  await db.raw(`
    CREATE FUNCTION ds_record_digest(source text, type text, ts timestamptz, payload jsonb) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN substring(sha256(convert_to(
      source || chr(31) || type || chr(31) || coalesce(extract(epoch FROM ts)::text, '') || chr(31) || payload::text,
      'UTF8')) FROM 1 FOR 16)`);
  await db.raw(`
    CREATE FUNCTION ds_insert_records(batch json) RETURNS SETOF uuid
    LANGUAGE plpgsql AS $$
    DECLARE
      created uuid[];
      conflicts text;
    BEGIN
      WITH input AS (
        SELECT * FROM json_to_recordset(batch) AS t(
          id uuid, source text, type text, "timestamp" timestamptz, payload jsonb, trace text,
          keyed boolean, stamped boolean)
      ), claimed AS (
        INSERT INTO record_ids (id, "timestamp", digest)
        SELECT id, "timestamp",
               CASE WHEN keyed THEN ds_record_digest(source, type, CASE WHEN stamped THEN "timestamp" END, payload) END
        FROM input ORDER BY id
        ON CONFLICT (id) DO NOTHING
        RETURNING id
      ), inserted AS (
        INSERT INTO records AS r (id, source, type, "timestamp", payload)
        SELECT i.id, i.source, i.type, i."timestamp", i.payload FROM input i JOIN claimed c USING (id)
        RETURNING r.id, ds_record_json(r.id, r.source, r.type, r."timestamp", r.payload, r.received_at) AS json
      ), announced AS (
        INSERT INTO outbox (record_id, event, trace)
        SELECT n.id, ds_record_event_json(n.json), i.trace FROM inserted n JOIN input i USING (id)
      )
      SELECT array_agg(id) INTO created FROM inserted;

      IF coalesce(cardinality(created), 0) < json_array_length(batch) THEN
        SELECT string_agg(i.id::text, ',' ORDER BY i.id) INTO conflicts
        FROM json_to_recordset(batch) AS i(id uuid, source text, type text, "timestamp" timestamptz, payload jsonb,
                                           keyed boolean, stamped boolean)
        JOIN record_ids known ON known.id = i.id
        WHERE i.keyed AND NOT (i.id = ANY (coalesce(created, '{}')))
          AND known.digest <> ds_record_digest(i.source, i.type, CASE WHEN i.stamped THEN i."timestamp" END, i.payload);
        IF conflicts IS NOT NULL THEN
          RAISE EXCEPTION 'ids already stored with other content' USING ERRCODE = 'DS409', DETAIL = conflicts;
        END IF;
      END IF;
      RETURN QUERY SELECT unnest(created);
    END
    $$`);
  await db.raw(`
    CREATE FUNCTION ds_find_record_source(record_id uuid, OUT record_source text, OUT record_json text)
    LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
    DECLARE
      at timestamptz;
    BEGIN
      SELECT i."timestamp" INTO at FROM record_ids i WHERE i.id = record_id;
      IF FOUND THEN
        SELECT r.source, ds_record_json(r.id, r.source, r.type, r."timestamp", r.payload, r.received_at)
        INTO record_source, record_json
        FROM records r WHERE r."timestamp" = at AND r.id = record_id;
      END IF;
    END
    $$`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP FUNCTION IF EXISTS ds_find_record_source(uuid), ds_insert_records(json)');
  await db.raw('DROP FUNCTION IF EXISTS ds_record_digest(text, text, timestamptz, jsonb)');
  await db.raw('ALTER TABLE record_ids DROP COLUMN IF EXISTS digest');
}
