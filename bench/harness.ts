/** What every bench script needs around the servers it measures: a seeded throwaway database and free ports. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import knexFactory from 'knex';
import { parse as parseYaml } from 'yaml';
import { migrateLatest } from '../service/db/migrator.js';

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh database named `<prefix>_<pid>_<random>`, migrated and seeded with `rows` users; dropped by drop(). */
export async function createBenchDatabase(adminUrl: string, rows: number, prefix: string): Promise<BenchDatabase> {
  const name = `${prefix}_${String(process.pid)}_${randomBytes(3).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 4 } });
  const drop = async () => {
    await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  };
  try {
    await migrateLatest(db, { advisoryLock: true });
    await db.raw(`INSERT INTO users (name, email) SELECT 'User ' || g, 'user' || g || '@seed.example' FROM generate_series(1, ?) AS g`, [rows]);
    await db.raw('VACUUM ANALYZE users');
  } catch (err) {
    await db.destroy();
    await drop();
    throw err;
  }
  await db.destroy();
  return { name, url: url.toString(), drop };
}

/** A port free on loopback right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => { resolve(typeof address === 'object' && address ? address.port : 0); });
    });
  });
}

/**
 * The runtime settings the chart gives every pod (V8's heap, glibc's malloc arenas), read from its
 * defaults, so a benched service runs as a deployed one and the two cannot drift.
 */
export function chartRuntimeEnv(): { NODE_OPTIONS: string; MALLOC_ARENA_MAX: string } {
  const values = parseYaml(readFileSync(new URL('../chart/users-service/values.yaml', import.meta.url), 'utf8')) as { nodeOptions: string; mallocArenaMax: number };
  return { NODE_OPTIONS: values.nodeOptions, MALLOC_ARENA_MAX: String(values.mallocArenaMax) };
}
