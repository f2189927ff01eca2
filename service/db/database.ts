import knexFactory, { type Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { redactUrl } from '../observability/logger.js';

/** A snapshot of the connection pool, read when Prometheus scrapes (never on the request path). */
export interface PoolStats {
  used: number;
  free: number;
  pendingAcquires: number;
  max: number;
}

export interface Database {
  knex: Knex;
  /** `embedded` is PGlite in memory: for trying the service without PostgreSQL, never for production. */
  mode: 'postgres' | 'embedded';
  poolStats: () => PoolStats;
  close: () => Promise<void>;
}

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  max: number;
}

function postgres(config: Config, databaseUrl: string): Knex {
  const { poolMax, poolMin, connMaxLifetimeMs, acquireTimeoutMs, statementTimeoutMs } = config.db;
  return knexFactory({
    client: 'pg',
    connection: {
      connectionString: databaseUrl,
      application_name: 'users-service',
      // A server that does not answer must not hold a request longer than the acquire timeout.
      connectionTimeoutMillis: acquireTimeoutMs,
      statement_timeout: statementTimeoutMs,
      // Client-side guard for a socket that went silent (statement_timeout needs a live server).
      query_timeout: statementTimeoutMs + 1_000,
      keepAlive: true,
    },
    pool: {
      min: poolMin,
      max: poolMax,
      acquireTimeoutMillis: acquireTimeoutMs,
      idleTimeoutMillis: 30_000,
      maxConnectionLifetimeMillis: connMaxLifetimeMs,
      // Spread reconnections so all connections opened together do not expire together.
      maxConnectionLifetimeJitterMillis: Math.round(connMaxLifetimeMs * 0.1),
    },
  });
}

async function embedded(): Promise<Knex> {
  // Loaded only when used: production images never execute PGlite.
  const { default: ClientPgLite } = await import('knex-pglite');
  return knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: {} });
}

/** Reports how long each pool acquire waited (tarn's events carry an id per acquire). */
function observeAcquireWait(pool: NodeJS.EventEmitter, observe: (seconds: number) => void): void {
  const started = new Map<number, number>();
  pool.on('acquireRequest', (id: number) => started.set(id, performance.now()));
  pool.on('acquireSuccess', (id: number) => {
    const start = started.get(id);
    started.delete(id);
    if (start !== undefined) observe((performance.now() - start) / 1000);
  });
  pool.on('acquireFail', (id: number) => started.delete(id));
}

export async function openDatabase(config: Config, log: Logger, onAcquire?: (seconds: number) => void): Promise<Database> {
  const mode = config.databaseUrl ? 'postgres' : 'embedded';
  if (config.databaseUrl) {
    log.info({ database: redactUrl(config.databaseUrl), poolMax: config.db.poolMax }, 'using PostgreSQL');
  } else {
    log.warn('DATABASE_URL is not set: running on an embedded in-memory PostgreSQL (PGlite). Data is lost on exit; set DATABASE_URL for real use.');
  }
  const knex = config.databaseUrl ? postgres(config, config.databaseUrl) : await embedded();
  // knex types its client loosely; tarn's pool is what knex ≥ 3 always creates.
  const pool = (knex.client as { pool: TarnPool & NodeJS.EventEmitter }).pool;
  if (onAcquire) observeAcquireWait(pool, onAcquire);
  return {
    knex,
    mode,
    poolStats: () => ({ used: pool.numUsed(), free: pool.numFree(), pendingAcquires: pool.numPendingAcquires(), max: pool.max }),
    close: () => knex.destroy(),
  };
}

/** A trivial query, bounded in time, for readiness. */
export async function ping(knex: Knex, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { reject(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
  });
  try {
    await Promise.race([knex.raw('select 1'), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
