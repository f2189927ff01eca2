import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { createApp } from '../../service/app.js';
import { loadConfig, type Config } from '../../service/config.js';
import { openDatabase, type Database } from '../../service/db/database.js';
import { createLogger } from '../../service/observability/logger.js';
import { createMetrics, type Metrics } from '../../service/observability/metrics.js';
import { loadOpenApi } from '../../service/openapi/contract.js';
import { createRateLimiter } from '../../service/ratelimit/create-rate-limiter.js';
import type { RateLimiter } from '../../service/ratelimit/limiter.js';
import { boundPort, listen } from '../../service/server.js';

export interface TestApp {
  baseUrl: string;
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
 * The real application, wired exactly as main.ts does it, on a real database and port 0.
 * `env` overrides configuration the way an operator would.
 */
export async function startTestApp(databaseUrl: string, env: Record<string, string> = {}): Promise<TestApp> {
  const config = loadConfig({ LOG_LEVEL: 'info', RATE_LIMIT_RPS: '1000000', RATE_LIMIT_BURST: '1000000', ...env, DATABASE_URL: databaseUrl, PORT: '0' });
  const logs: Record<string, unknown>[] = [];
  const log = createLogger(config.logLevel, logSink(logs));
  const metrics = createMetrics(new Registry());
  const database = await openDatabase(config, log, (s) => { metrics.dbPoolAcquireDuration.observe(s); });
  metrics.observePool(database.poolStats);
  const rateLimiter = createRateLimiter({
    redisUrl: config.redisUrl,
    policy: { rps: config.rateLimit.rps, burst: config.rateLimit.burst },
    redisTimeoutMs: config.rateLimit.redisTimeoutMs,
    log,
    metrics,
  });
  const draining = { value: false };
  const app = createApp({ config, log, metrics, database, rateLimiter, openapi: loadOpenApi(), isDraining: () => draining.value });
  const server: Server = await listen(app, config);
  return {
    baseUrl: `http://127.0.0.1:${boundPort(server)}`,
    config,
    metrics,
    database,
    rateLimiter,
    logs,
    draining,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await Promise.all([database.close(), rateLimiter.close()]);
    },
  };
}
