import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';

/** Source and build keep migrations/ at the same distance from this file (service/db → ../../migrations). */
const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

/** An arbitrary constant shared by every runner of this service's migrations. */
const MIGRATION_LOCK_KEY = 7_310_042;

/**
 * Applies pending migrations. Runners that start together (several pods, a Job and a developer)
 * queue on a PostgreSQL advisory lock, so the second finds nothing to do instead of failing on
 * knex's own lock table.
 */
export async function migrateLatest(knex: Knex, options: { advisoryLock: boolean }): Promise<string[]> {
  const config: Knex.MigratorConfig = { directory: MIGRATIONS_DIR, loadExtensions: ['.js', '.ts'] };
  if (!options.advisoryLock) {
    const [, applied] = (await knex.migrate.latest(config)) as [number, string[]];
    return applied;
  }
  return knex.transaction(async (trx) => {
    // Transaction-scoped: released by commit or rollback, even if this process dies mid-way.
    await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK_KEY]);
    const [, applied] = (await knex.migrate.latest(config)) as [number, string[]];
    return applied;
  });
}
