import type { Middleware } from 'koa';
import type { RateLimitScope } from '../config.js';
import type { RateLimitDecision, RateLimiter, RateLimitPolicy } from '../ratelimit/limiter.js';
import { problems, sendProblem } from './problem.js';

export interface RateLimitOptions {
  limiter: RateLimiter;
  /** 'client': one bucket per client IP (as Koa resolves it under the proxy trust); 'global': one bucket. */
  scope: RateLimitScope;
}

/** Only the API is limited; probes, scrapes and the contract must never be refused. */
export function isLimitedPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/');
}

/**
 * Header fields of draft-ietf-httpapi-ratelimit-headers (-10/-11): Structured Field lists whose
 * item is the policy name (a String) with parameters.
 *
 *   RateLimit-Policy: "default";q=<burst>;w=<seconds>
 *   RateLimit:        "default";r=<remaining>;t=<seconds>
 *
 * The draft's policy is "q units per window of w whole seconds"; a token bucket has no fixed
 * window, so we advertise the part a client can rely on: a full bucket admits q = burst requests,
 * and it refills completely within burst/rps seconds, rounded up because sub-second windows are
 * not expressible (for 100 r/s, burst 10: q=10;w=1, conservative: pacing at q/w never gets a 429).
 * Units are the draft's default ("requests"), so `qu` is omitted; no `pk`, as the key is an IP.
 */
export const POLICY_NAME = 'default';

export function policyField(policy: RateLimitPolicy): string {
  const windowSeconds = Math.max(1, Math.ceil(policy.burst / policy.rps));
  return `"${POLICY_NAME}";q=${policy.burst};w=${windowSeconds}`;
}

/** Whole seconds, rounded up and never 0: "retry in 0 s" would invite an immediate retry storm. */
export function wholeSecondsAtLeastOne(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * r: requests that may be sent right now. t: when admitted, seconds until the bucket is full
 * again; when refused, the Retry-After value (the draft asks that Retry-After not point earlier
 * than the end of t).
 */
export function rateLimitField(decision: RateLimitDecision): string {
  const t = decision.allowed ? Math.ceil(decision.resetMs / 1000) : wholeSecondsAtLeastOne(decision.retryAfterMs);
  return `"${POLICY_NAME}";r=${decision.remaining};t=${t}`;
}

/**
 * Token-bucket rate limiting of /api. Our own middleware rather than koa-ratelimit (6.x): that
 * keeps a sliding-window log on the application's clock, has no burst parameter, and turns a
 * Redis error into a 500; here the limiter decides (Redis with an in-process fallback) and
 * never rejects, and this middleware only maps the decision onto HTTP.
 *
 * The client key is ctx.ip: the app sets app.proxy/maxIpsCount from TRUST_PROXY_HOPS, so only the
 * entries our own proxies appended to X-Forwarded-For count, and a client's own header cannot pick a
 * fresh bucket. Decisions are counted by the limiter, which alone knows whether Redis or the
 * fallback took them.
 */
export function rateLimit({ limiter, scope }: RateLimitOptions): Middleware {
  const policyHeader = policyField(limiter.policy);
  return async function rateLimitMiddleware(ctx, next) {
    if (!isLimitedPath(ctx.path)) {
      await next();
      return;
    }
    const decision = await limiter.consume(scope === 'global' ? 'global' : `ip:${ctx.ip}`);
    ctx.set('RateLimit-Policy', policyHeader);
    ctx.set('RateLimit', rateLimitField(decision));
    if (!decision.allowed) {
      const retryAfter = wholeSecondsAtLeastOne(decision.retryAfterMs);
      ctx.set('Retry-After', String(retryAfter));
      sendProblem(ctx, problems.rateLimited(retryAfter));
      return;
    }
    await next();
  };
}
