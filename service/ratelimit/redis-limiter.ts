import type { Redis } from 'ioredis';
import { decide, gcraParams, type GcraParams } from './gcra.js';
import type { RateLimitDecision, RateLimitPolicy } from './limiter.js';

/**
 * The GCRA step of gcra.ts `decide`, run atomically inside Redis: one round trip (EVALSHA via
 * ioredis defineCommand), no read-modify-write race between replicas.
 *
 * - Time comes from Redis' TIME, so replicas whose clocks disagree still share one timeline.
 *   (Redis ≥ 5 replicates scripts by effects, so a non-deterministic TIME before a write is allowed
 *   without redis.replicate_commands().)
 * - The key expires when the bucket would be full again: an absent key *is* a full bucket, so
 *   idle clients cost no memory.
 * - Numbers cross the boundary as strings (%.17g round-trips a double exactly); a Lua number in a
 *   reply would be truncated to an integer.
 * - It returns the verdict plus its inputs (now, effective TAT) so that the remaining/reset/retry
 *   figures are computed by the same TypeScript as the in-process limiter.
 */
export const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local tat = stored and tonumber(stored) or now
if tat < now then tat = now end
local newTat = tat + interval
local verdict = 0
if now >= newTat - window then
  verdict = 1
  redis.call('SET', KEYS[1], string.format('%.17g', newTat), 'PX', math.max(1, math.ceil(newTat - now)))
end
return {verdict, string.format('%.17g', now), string.format('%.17g', tat)}
`;

const COMMAND = 'usersServiceRateLimitGcra';

type GcraReply = [number, string, string];

interface WithGcraCommand {
  [COMMAND](key: string, intervalMs: string, burstWindowMs: string): Promise<GcraReply>;
}

export const DEFAULT_KEY_PREFIX = 'ratelimit:users-service:';

export interface RedisLimiterOptions {
  redis: Redis;
  policy: RateLimitPolicy;
  /** Namespace of the bucket keys; tests use a unique one per run. */
  keyPrefix?: string;
}

/**
 * Decides against the shared bucket in Redis. Unlike the RateLimiter contract, `tryConsume`
 * rejects when Redis fails: the resilient limiter decides what a failure means.
 */
export class RedisLimiter {
  readonly policy: RateLimitPolicy;
  private readonly params: GcraParams;
  private readonly args: [string, string];
  private readonly redis: Redis & WithGcraCommand;
  private readonly keyPrefix: string;

  constructor(options: RedisLimiterOptions) {
    this.policy = { ...options.policy };
    this.params = gcraParams(options.policy);
    // String(double) is the shortest exact representation: Lua sees the very same numbers.
    this.args = [String(this.params.intervalMs), String(this.params.burstWindowMs)];
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    const redis = options.redis as Redis & Partial<WithGcraCommand>;
    // Registered once per client; ioredis sends EVALSHA and falls back to EVAL after a NOSCRIPT.
    if (typeof redis[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: GCRA_LUA });
    this.redis = redis as Redis & WithGcraCommand;
  }

  async tryConsume(key: string): Promise<RateLimitDecision> {
    const [verdict, nowText, tatText] = await this.redis[COMMAND](this.keyPrefix + key, ...this.args);
    const result = decide(Number(tatText), Number(nowText), this.params);
    // Same IEEE operations on the same inputs, so the two agree; should they ever not, Redis'
    // verdict is the one that was applied to the bucket.
    const allowed = verdict === 1;
    return {
      allowed,
      remaining: allowed ? result.remaining : 0,
      resetMs: result.resetMs,
      retryAfterMs: allowed ? 0 : result.retryAfterMs,
    };
  }
}
