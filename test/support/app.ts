import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { createApp } from '../../service/app.js';
import { loadConfig, type Config } from '../../service/config.js';
import type { Database } from '../../service/db/database.js';
import { openDependencies } from '../../service/dependencies.js';
import { createLogger } from '../../service/observability/logger.js';
import { closeMetrics, listenMetrics } from '../../service/observability/metrics-server.js';
import type { Metrics } from '../../service/observability/metrics.js';
import type { RateLimiter } from '../../service/ratelimit/limiter.js';
import { boundPort, listen } from '../../service/server/listen.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestApp {
  baseUrl: string;
  /** The metrics port's GET /metrics (METRICS_PORT), which the application port does not serve. */
  metricsUrl: string;
  config: Config;
  metrics: Metrics;
  database: Database;
  rateLimiter: RateLimiter;
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[];
  draining: { value: boolean };
  close(): Promise<void>;
}

/** Captures pino's JSON lines in memory so tests can read what operators would see. */
function logSink(lines: Record<string, unknown>[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
}

/**
 * The real application, wired as main.ts wires it (same dependency factory), on a real database
 * and port 0. `env` overrides configuration the way an operator would; the limiter is generous
 * unless a test asks otherwise, so only rate-limit tests meet 429s.
 */
export async function startTestApp(databaseUrl: string | undefined, env: Record<string, string> = {}): Promise<TestApp> {
  // An empty DATABASE_URL is unset: the embedded PGlite database, as `npm start` runs without one.
  const config = loadConfig({ LOG_LEVEL: 'info', RATE_LIMIT_RPS: '1000000', RATE_LIMIT_BURST: '1000000', ...env, DATABASE_URL: databaseUrl ?? '', PORT: '0', METRICS_PORT: '0' });
  const logs: Record<string, unknown>[] = [];
  const log = createLogger(config.logLevel, logSink(logs));
  const dependencies = await openDependencies(config, log);
  const draining = { value: false };
  const app = createApp({ config, log, ...dependencies, isDraining: () => draining.value });
  const server: Server = await listen(app, config);
  const metricsServer = await listenMetrics(dependencies.metrics.registry, config.metricsPort);
  return {
    baseUrl: `http://127.0.0.1:${boundPort(server)}`,
    metricsUrl: `http://127.0.0.1:${boundPort(metricsServer)}/metrics`,
    config,
    metrics: dependencies.metrics,
    database: dependencies.database,
    rateLimiter: dependencies.rateLimiter,
    logs,
    draining,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await closeMetrics(metricsServer);
      await dependencies.close();
    },
  };
}

/** Where a suite's app keeps its data: a fresh database on the real PostgreSQL, or embedded PGlite. */
export type Backend = 'postgres' | 'embedded';
export const BACKENDS: readonly Backend[] = ['postgres', 'embedded'];

/**
 * Registers mocha hooks that give the enclosing suite a fresh database and an app on it, torn
 * down afterwards. Read `.db` and `.app` inside tests (they exist once `before` has run); `.db`
 * exists only on PostgreSQL, `.app.database.knex` on both.
 */
export function useTestApp(env: Record<string, string> = {}, backend: Backend = 'postgres'): { readonly db: TestDatabase; readonly app: TestApp } {
  let db: TestDatabase | undefined;
  let app: TestApp | undefined;
  before(async function () {
    // PGlite compiles its WebAssembly and migrates in this process: seconds when idle, a minute on a busy CI core.
    if (backend === 'embedded') this.timeout(300_000);
    db = backend === 'postgres' ? await createTestDatabase() : undefined;
    app = await startTestApp(db?.url, env);
  });
  after(async () => {
    await app?.close();
    await db?.drop();
  });
  return {
    get db() {
      if (!db) throw new Error('useTestApp: the database exists only once the suite has started');
      return db;
    },
    get app() {
      if (!app) throw new Error('useTestApp: the app exists only once the suite has started');
      return app;
    },
  };
}
