import type { Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { LimiterHealth, RateLimitDecision, RateLimiter, RateLimitOutcome, RateLimitPolicy } from './limiter.js';
import type { LocalLimiter } from './local-limiter.js';
import type { RedisLimiter } from './redis-limiter.js';

/** What the limiter reports; the factory binds these to the Prometheus counters. */
export interface LimiterHooks {
  onDecision(outcome: RateLimitOutcome): void;
  onRedisError(): void;
}

export interface FallbackLimiterOptions {
  /**
   * The client the remote limiter uses, configured to fail fast (no offline queue, no per-request
   * retries): an absent Redis costs nothing, and the remote limiter's deadline bounds a slow one.
   */
  redis: Redis;
  /** Settles every decision within its deadline (RATE_LIMIT_REDIS_TIMEOUT), rejecting on a miss. */
  remote: RedisLimiter;
  local: LocalLimiter;
  log: Pick<Logger, 'info' | 'warn'>;
  hooks: LimiterHooks;
  /** While Redis is down, at most one request per interval tries it (the others decide locally at once). */
  probeIntervalMs?: number;
  now?: () => number;
}

type RedisState = 'connecting' | 'up' | 'down';

const DEFAULT_PROBE_INTERVAL_MS = 500;

/**
 * The limiter the service runs with a REDIS_URL: Redis decides (one budget across replicas);
 * when Redis fails or is slower than its timeout, this replica decides alone with the same policy
 * (fail-open to local: the API keeps serving, each replica admitting up to the full rate).
 *
 * Recovery needs no operator: ioredis keeps reconnecting in the background and its 'ready' event
 * switches back at once; a Redis that is connected but slow is retried by one probe request per
 * interval, so a timeout is paid twice a second rather than by every request.
 * State changes are logged once each way; per-request facts go to the counters.
 */
export class FallbackLimiter implements RateLimiter {
  readonly policy: RateLimitPolicy;
  private state: RedisState = 'connecting';
  private closing = false;
  private lastProbeAt = Number.NEGATIVE_INFINITY;
  private probing = false;
  private lastError: string | undefined;
  private readonly probeIntervalMs: number;
  private readonly now: () => number;

  constructor(private readonly options: FallbackLimiterOptions) {
    this.policy = { ...options.remote.policy };
    this.probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.now = options.now ?? (() => performance.now());
    const { redis } = options;
    // Without an 'error' listener ioredis prints every failed reconnect; the message is kept for the log line.
    redis.on('error', (err: Error) => { this.lastError = err.message; });
    redis.on('ready', () => { this.markUp(); });
    redis.on('close', () => { this.markDown(); });
  }

  async consume(key: string): Promise<RateLimitDecision> {
    const { hooks, remote, local } = this.options;
    if (this.state === 'up' || this.claimProbe()) {
      try {
        const decision = await remote.tryConsume(key);
        this.markUp();
        hooks.onDecision(decision.allowed ? 'allowed' : 'limited');
        return decision;
      } catch (err) {
        hooks.onRedisError();
        // The next probe comes one interval after this failure, not with the very next request.
        // (While disconnected a probe fails at once, without an offline queue: cheap, and it keeps
        // ratelimit_redis_errors_total rising for as long as the outage lasts.)
        this.lastProbeAt = this.now();
        this.lastError = err instanceof Error ? err.message : String(err);
        this.markDown();
      } finally {
        this.probing = false;
      }
    }
    const decision = local.take(key);
    hooks.onDecision(decision.allowed ? 'fallback_allowed' : 'fallback_limited');
    return decision;
  }

  health(): LimiterHealth {
    return this.state === 'up' ? 'ok' : 'degraded';
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.options.local.close();
    const { redis } = this.options;
    // quit() waits for pending replies; when there is no connection there is nothing to wait for.
    if (redis.status === 'ready') await redis.quit().catch(() => { redis.disconnect(); });
    else redis.disconnect();
  }

  /** While not up, lets one request at a time, at most once per interval, try Redis. */
  private claimProbe(): boolean {
    if (this.probing) return false;
    const now = this.now();
    if (now - this.lastProbeAt < this.probeIntervalMs) return false;
    this.lastProbeAt = now;
    this.probing = true;
    return true;
  }

  private markUp(): void {
    if (this.state === 'up' || this.closing) return;
    const previous = this.state;
    this.state = 'up';
    if (previous === 'down') this.options.log.info('rate limiter: Redis is back, the shared budget applies again');
    else this.options.log.info('rate limiter: using Redis');
  }

  private markDown(): void {
    if (this.state === 'down' || this.closing) return;
    this.state = 'down';
    this.options.log.warn(
      { err: { message: this.lastError ?? 'connection closed' } },
      'rate limiter: Redis unavailable, deciding in-process until it answers again (each replica admits the full rate)',
    );
  }
}
