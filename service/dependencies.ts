import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { IssuerKeys } from './auth/issuer-keys.js';
import { TokenVerifier } from './auth/token-verifier.js';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { migrateLatest } from './db/migrator.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createTracing, type Tracing } from './observability/tracing.js';
import { tracedLimiter } from './observability/tracing-limiter.js';
import { loadOpenApi, type OpenApiDocument } from './openapi/contract.js';
import { createRateLimiter } from './ratelimit/create-rate-limiter.js';
import type { RateLimiter } from './ratelimit/limiter.js';
import { startIdempotencyPurge } from './users/idempotency-purge.js';
import { KnexUsersRepository } from './users/knex-repository.js';

/** Everything the app is built from, besides configuration and the logger. */
export interface Dependencies {
  metrics: Metrics;
  database: Database;
  rateLimiter: RateLimiter;
  openapi: OpenApiDocument;
  /** Undefined when authentication is off (no AUTH_ISSUER). */
  tokenVerifier: TokenVerifier | undefined;
  tracing: Tracing;
  /** Closes the pool and Redis and flushes pending spans; the process can then exit cleanly. */
  close: () => Promise<void>;
}

/**
 * Opens the service's dependencies from configuration. main.ts and the tests both call this, so
 * the tests exercise the wiring that production runs.
 */
export async function openDependencies(config: Config, log: Logger): Promise<Dependencies> {
  const metrics = createMetrics(new Registry());
  const tracing = await createTracing(config.tracing, {
    droppedSpans: metrics.tracingSpansDropped,
    // Flushing at exit gets what the drain delay leaves of the shutdown deadline, at most one export's timeout.
    flushTimeoutMs: Math.max(0, Math.min(config.tracing.exportRequestTimeoutMs, config.shutdown.timeoutMs - config.shutdown.drainDelayMs)),
  });
  const database = await openDatabase(config, log, (seconds) => { metrics.dbPoolAcquireDuration.observe(seconds); });
  metrics.observePool(database.poolStats);
  // The embedded database lives in memory: it starts empty every time.
  if (database.mode === 'embedded') await migrateLatest(database.knex, { advisoryLock: false });
  const rateLimiter = tracedLimiter(createRateLimiter({
    redisUrl: config.redisUrl,
    policy: { rps: config.rateLimit.rps, burst: config.rateLimit.burst },
    redisTimeoutMs: config.rateLimit.redisTimeoutMs,
    log,
    metrics,
    tracing,
  }), tracing);
  const keys = new KnexUsersRepository(database.knex, metrics.dbQueryDuration, tracing);
  const stopPurge = startIdempotencyPurge({
    purgeExpiredKeys: (batch) => keys.purgeExpiredKeys(batch),
    intervalMs: config.idempotency.purgeIntervalMs,
    log,
    purged: metrics.idempotencyKeysPurged,
  });
  return {
    metrics,
    database,
    rateLimiter,
    openapi: loadOpenApi(),
    tokenVerifier: openTokenVerifier(config, log, metrics),
    tracing,
    close: async () => {
      await stopPurge();
      await Promise.allSettled([database.close(), rateLimiter.close(), tracing.shutdown()]);
    },
  };
}

function openTokenVerifier(config: Config, log: Logger, metrics: Metrics): TokenVerifier | undefined {
  if (!config.auth) {
    log.warn('AUTH_ISSUER is not set: authentication is off and every caller may read and write users. Set AUTH_ISSUER and AUTH_AUDIENCE for real use.');
    return undefined;
  }
  const { issuer, audience, jwksUrl, jwksTimeoutMs, jwksCooldownMs } = config.auth;
  log.info({ issuer, audience, jwksUrl }, 'authentication: OAuth 2.0 bearer JWTs');
  // Keys are fetched with the first token, not at start: an identity provider outage never stops
  // the service from starting or being ready.
  const keys = new IssuerKeys({
    issuer,
    jwksUrl,
    timeoutMs: jwksTimeoutMs,
    cooldownMs: jwksCooldownMs,
    log,
    onFetch: (result) => { metrics.authKeyFetches.inc({ result }); },
  });
  return new TokenVerifier({ issuer, audience, getKey: keys.getKey });
}
