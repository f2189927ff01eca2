import type { RateLimitDecision, RateLimitPolicy } from './limiter.js';

/**
 * GCRA (generic cell rate algorithm): a token bucket stored as one number, the bucket's
 * theoretical arrival time (TAT). It is the same limiter as Go's rate.NewLimiter(rps, burst):
 * tokens available at `now` = (now + burstWindow − TAT) / interval, capped at `burst`.
 *
 * This module is the only TypeScript statement of the semantics. The in-process limiter runs it
 * directly; the Redis limiter's Lua script mirrors `decide` (five lines) and hands its inputs back so
 * that `decide` computes the same decision's remaining/reset/retry figures here.
 *
 * Times are milliseconds as floats: at today's epoch a double resolves ~0.2 µs, far below any interval.
 */

export interface GcraParams {
  /** Emission interval: milliseconds one token takes to refill (1000 / rps). */
  intervalMs: number;
  /** Milliseconds a full bucket represents (interval × burst): how far TAT may run ahead of now. */
  burstWindowMs: number;
}

export interface GcraResult extends RateLimitDecision {
  /** The TAT to store: advanced by one interval when allowed, unchanged when refused. */
  tat: number;
}

/**
 * Rounding slack when turning a time difference back into a whole number of tokens, so that
 * e.g. 3 × 333.33… ms counts as 3 tokens, not 2.999…
 */
const TOKEN_EPSILON = 1e-9;

export function gcraParams(policy: RateLimitPolicy): GcraParams {
  if (!(policy.rps > 0) || !Number.isInteger(policy.burst) || policy.burst < 1) {
    throw new RangeError(`invalid rate-limit policy: rps=${policy.rps} burst=${policy.burst}`);
  }
  const intervalMs = 1000 / policy.rps;
  return { intervalMs, burstWindowMs: intervalMs * policy.burst };
}

/**
 * One request against a bucket whose stored TAT is `storedTat` (undefined: no state, i.e. full).
 * Allowed iff at least one whole token is available, exactly Go's Allow(): a refusal takes nothing.
 */
export function decide(storedTat: number | undefined, now: number, params: GcraParams): GcraResult {
  const { intervalMs, burstWindowMs } = params;
  // A TAT in the past means the bucket refilled completely; it never holds more than `burst`.
  const tat = storedTat === undefined || storedTat < now ? now : storedTat;
  const newTat = tat + intervalMs;
  const allowAt = newTat - burstWindowMs;
  if (now < allowAt) {
    return { allowed: false, tat, remaining: 0, resetMs: tat - now, retryAfterMs: allowAt - now };
  }
  const remaining = Math.floor((burstWindowMs - (newTat - now)) / intervalMs + TOKEN_EPSILON);
  return { allowed: true, tat: newTat, remaining: Math.max(0, remaining), resetMs: newTat - now, retryAfterMs: 0 };
}

/** True when the bucket holds `burst` tokens again, so its state can be forgotten. */
export function isFull(tat: number, now: number): boolean {
  return tat <= now;
}
