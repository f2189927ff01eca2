import type { RateLimitDecision } from './limiter.js';

/**
 * Refusals this replica has handed out, remembered until their Retry-After moment: a client that
 * keeps sending while refused is answered from memory, without Redis and before any token is
 * verified. Bounded: past `maxKeys` the oldest refusal is forgotten (forgetting only errs on the
 * side of asking the limiter again).
 */
export class RefusalMemory {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly maxKeys = 100_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  remember(key: string, retryAfterMs: number): void {
    this.until.delete(key);
    this.until.set(key, this.now() + retryAfterMs);
    if (this.until.size > this.maxKeys) this.until.delete(this.until.keys().next().value as string);
  }

  /** The refusal still in force for `key`, as a decision, or undefined. */
  recall(key: string): RateLimitDecision | undefined {
    const until = this.until.get(key);
    if (until === undefined) return undefined;
    const left = until - this.now();
    if (left <= 0) {
      this.until.delete(key);
      return undefined;
    }
    return { allowed: false, remaining: 0, resetMs: left, retryAfterMs: left };
  }
}
