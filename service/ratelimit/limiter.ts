/**
 * The rate limiter's contract, shared by the Redis limiter, the in-process limiter and the
 * middleware. Semantics: Go's rate.NewLimiter(rps, burst), i.e. GCRA with emission interval
 * 1/rps and a bucket of `burst` tokens.
 */
export interface RateLimitPolicy {
  /** Sustained requests per second. */
  rps: number;
  /** Requests a full bucket admits at once. */
  burst: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** Requests that could be sent right now without being refused (after this one). */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
  /** Milliseconds until one request would be admitted; 0 when allowed. */
  retryAfterMs: number;
}

/** How a decision was taken: by Redis (allowed/limited) or in-process while Redis is unavailable (fallback_*). */
export const RATE_LIMIT_OUTCOMES = ['allowed', 'limited', 'fallback_allowed', 'fallback_limited'] as const;
export type RateLimitOutcome = (typeof RATE_LIMIT_OUTCOMES)[number];

/** `ok`: Redis answers; `degraded`: deciding in-process while Redis is down; `disabled`: no Redis configured. */
export type LimiterHealth = 'ok' | 'degraded' | 'disabled';

export interface RateLimiter {
  readonly policy: RateLimitPolicy;
  /** Takes one token from `key`'s bucket. Never rejects: a Redis failure falls back in-process. */
  consume(key: string): Promise<RateLimitDecision>;
  health(): LimiterHealth;
  close(): Promise<void>;
}
