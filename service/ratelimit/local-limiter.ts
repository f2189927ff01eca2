import { performance } from 'node:perf_hooks';
import { decide, gcraParams, isFull, type GcraParams } from './gcra.js';
import type { RateLimitDecision, RateLimitPolicy } from './limiter.js';

export interface LocalLimiterOptions {
  policy: RateLimitPolicy;
  /**
   * Milliseconds, any origin. Defaults to the monotonic clock: a wall-clock step (NTP) must
   * neither refill every bucket nor freeze them.
   */
  now?: () => number;
  /** Hard cap on remembered keys; past it the least recently used bucket is forgotten. */
  maxKeys?: number;
  /** How often full buckets are swept out; 0 disables the timer (tests call sweep()). */
  sweepIntervalMs?: number;
}

const DEFAULT_MAX_KEYS = 100_000;
const DEFAULT_SWEEP_MS = 10_000;

/**
 * The in-process buckets: one replica's view only. Decide alone when no Redis is configured, and
 * as the fallback while Redis is unavailable (the limiters wrapping them count and report health).
 *
 * Memory stays bounded two ways: a bucket that is full again carries no information and is
 * swept out periodically, and a hard LRU cap covers a flood of distinct keys between sweeps
 * (forgetting a bucket early only errs on the side of admitting).
 */
export class LocalLimiter {
  readonly policy: RateLimitPolicy;
  private readonly params: GcraParams;
  private readonly now: () => number;
  private readonly maxKeys: number;
  /** key → TAT; Map iteration order is insertion order, kept as recency order by re-inserting. */
  private readonly tats = new Map<string, number>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(options: LocalLimiterOptions) {
    this.policy = { ...options.policy };
    this.params = gcraParams(options.policy);
    this.now = options.now ?? (() => performance.now());
    this.maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    const sweepMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_MS;
    if (sweepMs > 0) {
      this.timer = setInterval(() => { this.sweep(); }, sweepMs);
      // Housekeeping must never keep the process alive on its own.
      this.timer.unref();
    }
  }

  /** Synchronous: the fallback decides without waiting a tick. */
  take(key: string): RateLimitDecision {
    const now = this.now();
    const result = decide(this.tats.get(key), now, this.params);
    // Every access, refused ones included, marks the bucket as recently used: a client being
    // refused is the last one whose bucket should be forgotten.
    if (this.tats.has(key) || result.allowed) {
      this.tats.delete(key);
      this.tats.set(key, result.tat);
      // Over the cap: forget the least recently used bucket (O(1); the oldest is most likely full).
      if (this.tats.size > this.maxKeys) this.tats.delete(this.tats.keys().next().value as string);
    }
    const { allowed, remaining, resetMs, retryAfterMs } = result;
    return { allowed, remaining, resetMs, retryAfterMs };
  }

  /** Forgets every bucket that is full again. */
  sweep(): void {
    const now = this.now();
    for (const [key, tat] of this.tats) if (isFull(tat, now)) this.tats.delete(key);
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    this.tats.clear();
    return Promise.resolve();
  }
}
