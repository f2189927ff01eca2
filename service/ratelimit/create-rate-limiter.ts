import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { TRACING_OFF, type Tracing } from '../observability/tracing.js';
import { tracedLimiterHooks } from '../observability/tracing-limiter.js';
import { FallbackLimiter, type LimiterHooks } from './fallback-limiter.js';
import type { LimiterHealth, RateLimitDecision, RateLimiter, RateLimitPolicy } from './limiter.js';
import { LocalLimiter } from './local-limiter.js';
import { RedisLimiter } from './redis-limiter.js';

/** The only metrics the limiter touches (the full Metrics object satisfies this). */
export type RateLimitMetrics = Pick<Metrics, 'rateLimitDecisions' | 'rateLimitRedisErrors'>;

export interface CreateRateLimiterOptions {
  /** Undefined: in-process limiter only (embedded mode), with one warning. */
  redisUrl: string | undefined;
  policy: RateLimitPolicy;
  /** Longest wait for Redis on the request path before deciding in-process. */
  redisTimeoutMs: number;
  log: Pick<Logger, 'info' | 'warn'>;
  metrics: RateLimitMetrics;
  /** Namespace of the Redis keys (tests isolate their runs with it). */
  keyPrefix?: string;
  /** Decisions and Redis failures are also written on the limiter's span. */
  tracing?: Tracing;
}

/** Reconnection backoff: 100 ms doubling to a 2 s cap, forever; the request path never waits for it. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt - 1, 5), 2000);
}

/**
 * ioredis tuned for a limiter that must never hold a request: fail at once when disconnected
 * (no offline queue, no retry of a failed command), give up after `timeoutMs`, and reconnect in
 * the background. No auto-pipelining: the limiter batches concurrent decisions into one command
 * itself, and a pipeline would only add a turn of the event loop and its own bookkeeping.
 */
export function limiterRedisOptions(timeoutMs: number): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: 2000,
    retryStrategy: reconnectDelayMs,
    connectionName: 'users-service-ratelimit',
  };
}

export function limiterHooks(metrics: RateLimitMetrics): LimiterHooks {
  // Label children bound once: inc() on the hot path skips building and checking a label set (prom-client
  // still hashes it, about a third of a microsecond).
  const byOutcome = {
    allowed: metrics.rateLimitDecisions.labels('allowed'),
    limited: metrics.rateLimitDecisions.labels('limited'),
    fallback_allowed: metrics.rateLimitDecisions.labels('fallback_allowed'),
    fallback_limited: metrics.rateLimitDecisions.labels('fallback_limited'),
  };
  return {
    onDecision: (outcome) => { byOutcome[outcome].inc(); },
    onRedisError: () => { metrics.rateLimitRedisErrors.inc(); },
  };
}

/** The in-process limiter on its own still counts its decisions as allowed/limited. */
class CountedLocalLimiter implements RateLimiter {
  readonly policy: RateLimitPolicy;
  constructor(private readonly local: LocalLimiter, private readonly hooks: LimiterHooks) {
    this.policy = local.policy;
  }
  consume(key: string): Promise<RateLimitDecision> {
    const decision = this.local.take(key);
    this.hooks.onDecision(decision.allowed ? 'allowed' : 'limited');
    return Promise.resolve(decision);
  }
  health(): LimiterHealth {
    return 'disabled';
  }
  close(): Promise<void> {
    return this.local.close();
  }
}

/**
 * The limiter for this process: Redis with an in-process fallback when REDIS_URL is set,
 * in-process only (health 'disabled') otherwise. Connects in the background; never throws on an
 * unreachable Redis.
 */
export function createRateLimiter(options: CreateRateLimiterOptions): RateLimiter {
  const { redisUrl, policy, redisTimeoutMs, log, metrics, keyPrefix } = options;
  const hooks = tracedLimiterHooks(limiterHooks(metrics), options.tracing ?? TRACING_OFF);
  if (redisUrl === undefined) {
    log.warn(
      { rateLimit: policy },
      'REDIS_URL is not set: rate limiting in-process only, so each replica admits the full rate on its own',
    );
    return new CountedLocalLimiter(new LocalLimiter({ policy }), hooks);
  }
  const redis = new Redis(redisUrl, limiterRedisOptions(redisTimeoutMs));
  const limiter = new FallbackLimiter({
    redis,
    remote: new RedisLimiter({ redis, policy, keyPrefix, timeoutMs: redisTimeoutMs }),
    local: new LocalLimiter({ policy }),
    log,
    hooks,
  });
  // Failures surface through the client's events (the limiter logs them once); retryStrategy keeps trying.
  redis.connect().catch(() => undefined);
  return limiter;
}
