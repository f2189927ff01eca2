import type { LimiterHooks } from '../ratelimit/fallback-limiter.js';
import type { RateLimiter } from '../ratelimit/limiter.js';
import type { Tracing } from './tracing.js';

/**
 * The limiter's decisions, also written on its span: which outcome, and whether the in-process
 * fallback took it because Redis failed. The key (a client address) is never recorded.
 */
export function tracedLimiterHooks(hooks: LimiterHooks, tracing: Tracing): LimiterHooks {
  if (!tracing.enabled) return hooks;
  return {
    onDecision(outcome) {
      tracing.annotate({ 'ratelimit.outcome': outcome, 'ratelimit.fallback': outcome.startsWith('fallback_') });
      hooks.onDecision(outcome);
    },
    onRedisError() {
      tracing.annotate({}, 'ratelimit.redis_failed');
      hooks.onRedisError();
    },
  };
}

/** One span per limiter decision, child of the request's span. */
export function tracedLimiter(limiter: RateLimiter, tracing: Tracing): RateLimiter {
  if (!tracing.enabled) return limiter;
  return {
    policy: limiter.policy,
    consume: (key) => tracing.limiterCall(() => limiter.consume(key)),
    health: () => limiter.health(),
    close: () => limiter.close(),
  };
}
