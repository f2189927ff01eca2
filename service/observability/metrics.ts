import { Counter, Gauge, Histogram, collectDefaultMetrics, type Metric, type Registry } from 'prom-client';
import type { PoolStats } from '../db/database.js';
import { RATE_LIMIT_OUTCOMES } from '../ratelimit/limiter.js';

/** Latency buckets for an API whose p99 should sit between a few and a few hundred milliseconds. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const DB_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * prom-client refuses a metric with exemplars on a registry made for the Prometheus text format,
 * although it renders them whenever that registry is switched to OpenMetrics, as exemplars.ts does
 * for the scrapes that ask for it; registering after construction skips the refusal.
 */
function registeredWithExemplars<T extends Metric>(registry: Registry, metric: T): T {
  registry.registerMetric(metric);
  return metric;
}

/**
 * Every metric the service publishes, registered on the registry it is given (never the global one),
 * so each test and each app instance counts on its own.
 */
export function createMetrics(registry: Registry) {
  collectDefaultMetrics({ register: registry });
  // These three are gauges named like counters (promtool's lint flags them); the per-type
  // nodejs_active_{handles,requests,resources} gauges carry the same numbers.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  let readPool: (() => PoolStats) | undefined;
  const withPool = (read: (stats: PoolStats) => number) =>
    function (this: Gauge) {
      if (readPool) this.set(read(readPool()));
    };

  const metrics = {
    registry,
    httpDuration: registeredWithExemplars(registry, new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by method, matched route template and status code.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: HTTP_BUCKETS,
      // Trace ids on the buckets, shown when the scrape asks for OpenMetrics (see exemplars.ts).
      enableExemplars: true,
      registers: [],
    })),
    httpInFlight: new Gauge({
      name: 'http_requests_in_flight',
      help: 'HTTP requests being served right now.',
      registers: [registry],
    }),
    dbQueryDuration: new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Database query latency by repository operation.',
      labelNames: ['operation'] as const,
      buckets: DB_BUCKETS,
      registers: [registry],
    }),
    dbPoolAcquireDuration: new Histogram({
      name: 'db_pool_acquire_duration_seconds',
      help: 'Time spent waiting for a pooled database connection.',
      buckets: DB_BUCKETS,
      registers: [registry],
    }),
    dbPoolConnections: new Gauge({
      name: 'db_pool_connections',
      help: 'Pooled database connections by state.',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        if (!readPool) return;
        const stats = readPool();
        this.set({ state: 'used' }, stats.used);
        this.set({ state: 'free' }, stats.free);
      },
    }),
    dbPoolPendingAcquires: new Gauge({
      name: 'db_pool_pending_acquires',
      help: 'Requests waiting for a pooled database connection.',
      registers: [registry],
      collect: withPool((s) => s.pendingAcquires),
    }),
    dbPoolMax: new Gauge({
      name: 'db_pool_max_connections',
      help: 'Configured maximum size of the database connection pool.',
      registers: [registry],
      collect: withPool((s) => s.max),
    }),
    rateLimitDecisions: new Counter({
      name: 'ratelimit_decisions_total',
      help: 'Rate limiter decisions by outcome; fallback_* are taken in-process while Redis is unavailable.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    rateLimitRedisErrors: new Counter({
      name: 'ratelimit_redis_errors_total',
      help: 'Rate limiter calls to Redis that failed or timed out.',
      registers: [registry],
    }),
    authOutcomes: new Counter({
      name: 'auth_requests_total',
      help: 'Requests to protected operations by authentication outcome (authenticated, missing, invalid_request, invalid_token, insufficient_scope, unavailable).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    authKeyFetches: new Counter({
      name: 'auth_jwks_fetches_total',
      help: "Fetches of the identity provider's discovery document and signing keys (JWKS), by result.",
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    usersCreated: new Counter({
      name: 'users_created_total',
      help: 'Users created.',
      registers: [registry],
    }),
    usersCreateConflicts: new Counter({
      name: 'users_create_conflicts_total',
      help: 'User creations refused because the e-mail is taken.',
      registers: [registry],
    }),
    usersUpdated: new Counter({
      name: 'users_updated_total',
      help: 'Users changed by a PATCH.',
      registers: [registry],
    }),
    usersErased: new Counter({
      name: 'users_erased_total',
      help: 'Users erased by a DELETE.',
      registers: [registry],
    }),
    idempotentReplays: new Counter({
      name: 'users_idempotent_replays_total',
      help: 'POST /api/users retries answered with the response stored for their Idempotency-Key.',
      registers: [registry],
    }),
    idempotencyKeysPurged: new Counter({
      name: 'idempotency_keys_purged_total',
      help: 'Expired idempotency keys deleted by the background purge.',
      registers: [registry],
    }),
    validationFailures: new Counter({
      name: 'validation_failures_total',
      help: 'Requests refused with 400 because their input broke the OpenAPI contract, by route.',
      labelNames: ['route'] as const,
      registers: [registry],
    }),
    tracingSpansDropped: new Counter({
      name: 'tracing_spans_dropped_total',
      help: 'Finished spans that never reached the collector: queue_full (export queue at its bound) or export_failed.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    /** Gives the pool gauges their source once the database exists; read at scrape time, never on the request path. */
    observePool(read: () => PoolStats): void {
      readPool = read;
    },
  };
  // Every outcome exists from the first scrape, so rate() and absent() behave from the start.
  for (const outcome of RATE_LIMIT_OUTCOMES) {
    metrics.rateLimitDecisions.inc({ outcome }, 0);
  }
  for (const outcome of ['authenticated', 'missing', 'invalid_request', 'invalid_token', 'insufficient_scope', 'unavailable'] as const) {
    metrics.authOutcomes.inc({ outcome }, 0);
  }
  for (const result of ['success', 'failure'] as const) metrics.authKeyFetches.inc({ result }, 0);
  for (const reason of ['queue_full', 'export_failed'] as const) metrics.tracingSpansDropped.inc({ reason }, 0);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
