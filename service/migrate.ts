/**
 * Migration entry: `npm run migrate` locally, `node dist/service/migrate.js` in the Kubernetes Job.
 * Safe to run from several places at once (advisory lock); exits 0 when the schema is current.
 */
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/database.js';
import { migrateLatest } from './db/migrator.js';
import { createLogger } from './observability/logger.js';

const config = (() => {
  try {
    const loaded = loadConfig();
    if (!loaded.databaseUrl) throw new ConfigError('DATABASE_URL is required to run migrations');
    return loaded;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`users-service migrate: configuration error: ${err.message}\n`);
    process.exit(1);
  }
})();
const log = createLogger(config.logLevel);
const database = await openDatabase({ ...config, db: { ...config.db, poolMin: 0, poolMax: 2 } }, log);
try {
  const applied = await migrateLatest(database.knex, { advisoryLock: true });
  log.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema already up to date');
} catch (err) {
  log.error({ err }, 'migration failed');
  process.exitCode = 1;
} finally {
  await database.close();
}
