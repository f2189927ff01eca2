import type { Knex } from 'knex';

/**
 * Conditional requests and idempotent creation. Additive only, so it is safe on a populated table
 * while the previous release still serves traffic:
 * - `users.version`: a constant default makes ADD COLUMN a catalogue change (no table rewrite,
 *   PostgreSQL ≥ 11); every existing row reads as version 1. A trigger bumps it on every update, so
 *   ETags derive from the database, never from a clock.
 * - `idempotency_keys`: a new table, with the stored response of each keyed creation.
 * ADD COLUMN still needs a brief ACCESS EXCLUSIVE lock. Queued behind a long transaction it would
 * block every query on users behind it, so it gives up after lock_timeout and the migration Job
 * is retried instead.
 */
export const LOCK_TIMEOUT = '2s';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
  await knex.raw('ALTER TABLE users ADD COLUMN version integer NOT NULL DEFAULT 1');
  await knex.raw(`
    CREATE FUNCTION users_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.version = OLD.version + 1;
      RETURN NEW;
    END
    $$`);
  await knex.raw(`
    CREATE TRIGGER users_version BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_version()`);

  await knex.raw(`
    CREATE TABLE idempotency_keys (
      client_id   text        NOT NULL,
      key         text        NOT NULL,
      fingerprint text,
      user_id     integer,
      status      smallint    NOT NULL,
      location    text,
      etag        text,
      body        jsonb,
      erased_at   timestamptz,
      created_at  timestamptz NOT NULL DEFAULT now(),
      expires_at  timestamptz NOT NULL,
      PRIMARY KEY (client_id, key)
    )`);
  await knex.raw('CREATE INDEX idx_idempotency_keys_user_id ON idempotency_keys (user_id) WHERE user_id IS NOT NULL');
  await knex.raw('CREATE INDEX idx_idempotency_keys_expires_at ON idempotency_keys (expires_at)');
  // Erasure is the database's job, so no path that deletes a user (the API, an operator in psql)
  // can leave the person's data in a stored response: the key stays as a tombstone until it expires.
  await knex.raw(`
    CREATE FUNCTION users_erase_idempotent_responses() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE idempotency_keys
         SET fingerprint = NULL, user_id = NULL, location = NULL, etag = NULL, body = NULL, erased_at = now()
       WHERE user_id = OLD.id;
      RETURN OLD;
    END
    $$`);
  await knex.raw(`
    CREATE TRIGGER users_erase_idempotent_responses AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_erase_idempotent_responses()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TRIGGER IF EXISTS users_erase_idempotent_responses ON users');
  await knex.raw('DROP FUNCTION IF EXISTS users_erase_idempotent_responses()');
  await knex.raw('DROP TABLE IF EXISTS idempotency_keys');
  await knex.raw('DROP TRIGGER IF EXISTS users_version ON users');
  await knex.raw('DROP FUNCTION IF EXISTS users_bump_version()');
  await knex.raw('ALTER TABLE users DROP COLUMN IF EXISTS version');
}
