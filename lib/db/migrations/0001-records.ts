import type { Knex } from 'knex';

/** Hash partitions of the id registry: smaller indexes and parallel vacuum at billions of ids. */
export const ID_REGISTRY_PARTITIONS = 16;

/**
 * Records are range-partitioned by `timestamp` (daily; TimescaleDB chunks where the extension is available).
 * PostgreSQL only enforces uniqueness on a partitioned table when the key includes the partition column, so
 * global id uniqueness lives in `record_ids`, a registry hash-partitioned by id: an insert claims its ids there
 * with ON CONFLICT DO NOTHING in the same statement as the record insert, which makes client-supplied ids
 * idempotent without a check-then-insert race. See docs/storage.md.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    CREATE TABLE record_ids (
      id uuid NOT NULL,
      "timestamp" timestamptz NOT NULL,
      PRIMARY KEY (id)
    ) PARTITION BY HASH (id)`);
  for (let remainder = 0; remainder < ID_REGISTRY_PARTITIONS; remainder++) {
    const name = `record_ids_p${String(remainder).padStart(2, '0')}`;
    await db.raw(
      `CREATE TABLE ${name} PARTITION OF record_ids FOR VALUES WITH (MODULUS ${ID_REGISTRY_PARTITIONS}, REMAINDER ${remainder})`,
    );
  }

  const timescale = await enableTimescale(db);
  await db.raw(`
    CREATE TABLE records (
      id uuid NOT NULL,
      source text NOT NULL CHECK (char_length(source) BETWEEN 1 AND 128),
      type text NOT NULL CHECK (char_length(type) BETWEEN 1 AND 128),
      "timestamp" timestamptz NOT NULL,
      payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
      received_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY ("timestamp", id)
    )${timescale ? '' : ' PARTITION BY RANGE ("timestamp")'}`);
  if (timescale) {
    await db.raw(`SELECT create_hypertable('records', by_range('timestamp', INTERVAL '1 day'))`);
  }
  // Both list orders match the API's ORDER BY "timestamp" DESC, id DESC exactly, so no plan needs a sort.
  await db.raw(`CREATE INDEX records_source_timestamp_id ON records (source, "timestamp" DESC, id DESC)`);
  await db.raw(`CREATE INDEX records_type_timestamp_id ON records (type, "timestamp" DESC, id DESC)`);

  await db.raw(`
    CREATE TABLE idempotency_keys (
      key text PRIMARY KEY,
      fingerprint text NOT NULL,
      response jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
  await db.raw(`CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP TABLE IF EXISTS idempotency_keys, records, record_ids CASCADE');
}

/** Creates the TimescaleDB extension when the server offers it; plain declarative partitioning otherwise. */
async function enableTimescale(db: Knex): Promise<boolean> {
  const available = await db.raw(`SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'`);
  if (available.rows.length === 0) return false;
  try {
    // A savepoint, so that a server which lists the extension but cannot load it leaves the migration usable.
    await db.transaction(async (trx) => {
      await trx.raw('CREATE EXTENSION IF NOT EXISTS timescaledb');
    });
    return true;
  } catch {
    return false;
  }
}
