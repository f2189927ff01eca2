import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
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
  /**
   * Readiness: resolves when the database answers within READY_PING_TIMEOUT_MS. On PostgreSQL it
   * uses a connection of its own, outside the pool: a pool busy serving the API must not make every
   * replica unready at once (a slowdown turned into an outage), while an unreachable server must.
   */
  ping: () => Promise<void>;
  close: () => Promise<void>;
}

/** Readiness must answer within a second, whatever the pool is doing. */
export const READY_PING_TIMEOUT_MS = 900;

/** A silent peer (dead server, dropped NAT entry) is probed after this long idle, not the OS's two hours. */
const TCP_KEEPALIVE_DELAY_MS = 10_000;

type PgConnection = pg.Client & { __knex__disposed?: unknown };
type QueryCallback = (err: Error | null, result?: unknown) => void;

/**
 * pg rejects a query at query_timeout (or on a protocol error) but the statement keeps running on
 * the connection, and knex would hand that connection to the next request, which then queues
 * behind it. Any error that is not the server's own answer (a DatabaseError with a SQLSTATE, after
 * which the connection is fine) marks the connection disposed, so knex destroys it instead of
 * reusing it, and its socket is closed at once. knex's pg dialect always calls query(config, callback).
 */
function disposeOnClientSideError(connection: PgConnection): void {
  const query = connection.query.bind(connection) as (config: unknown, callback?: QueryCallback) => unknown;
  (connection as unknown as { query: typeof query }).query = (config, callback) => {
    if (typeof callback !== 'function') return query(config, callback);
    return query(config, (err, result) => {
      if (err && !(err instanceof pg.DatabaseError)) {
        connection.__knex__disposed = err;
        connection.connection.stream.destroy();
      }
      callback(err, result);
    });
  };
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
      keepAliveInitialDelayMillis: TCP_KEEPALIVE_DELAY_MS,
    },
    pool: {
      min: poolMin,
      max: poolMax,
      acquireTimeoutMillis: acquireTimeoutMs,
      idleTimeoutMillis: 30_000,
      maxConnectionLifetimeMillis: connMaxLifetimeMs,
      // Spread reconnections so all connections opened together do not expire together.
      maxConnectionLifetimeJitterMillis: Math.round(connMaxLifetimeMs * 0.1),
      afterCreate(connection: PgConnection, done: (err: Error | null, connection: PgConnection) => void) {
        disposeOnClientSideError(connection);
        done(null, connection);
      },
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
    ...(config.databaseUrl ? dedicatedPing(config.databaseUrl, knex) : { ping: () => withinReadyBudget(knex.raw('select 1')), close: () => knex.destroy() }),
  };
}

async function withinReadyBudget(work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { reject(new Error(`no answer within ${READY_PING_TIMEOUT_MS} ms`)); }, READY_PING_TIMEOUT_MS);
  });
  work.catch(() => undefined);
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One connection, outside the pool, for readiness only; opened on first use and again after any
 * failure (a broken connection is dropped, never reused). Closing also destroys the pool.
 */
function dedicatedPing(databaseUrl: string, knex: Knex): Pick<Database, 'ping' | 'close'> {
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  const open = () => {
    connecting ??= (async () => {
      const fresh = new pg.Client({
        connectionString: databaseUrl,
        application_name: 'users-service-readiness',
        connectionTimeoutMillis: READY_PING_TIMEOUT_MS,
        query_timeout: READY_PING_TIMEOUT_MS,
        keepAlive: true,
        keepAliveInitialDelayMillis: TCP_KEEPALIVE_DELAY_MS,
      });
      fresh.on('error', () => { if (client === fresh) client = undefined; });
      await fresh.connect();
      client = fresh;
      return fresh;
    })().finally(() => { connecting = undefined; });
    return connecting;
  };
  return {
    ping: async () => {
      const current = client;
      try {
        await withinReadyBudget((current ? Promise.resolve(current) : open()).then((c) => c.query('select 1')));
      } catch (err) {
        if (client) void client.end().catch(() => undefined);
        client = undefined;
        throw err;
      }
    },
    close: async () => {
      await Promise.allSettled([client?.end(), knex.destroy()]);
      client = undefined;
    },
  };
}
