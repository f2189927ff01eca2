import type { Middleware } from 'koa';
import type { AuthState } from '../auth/principal.js';
import type { RateLimitScope } from '../config.js';
import { clientAddressKey } from '../ratelimit/client-address.js';
import type { RateLimitDecision, RateLimiter, RateLimitPolicy } from '../ratelimit/limiter.js';
import type { RefusalMemory } from '../ratelimit/refusals.js';
import { problems, sendProblem } from './problem.js';

export interface RateLimitOptions {
  limiter: RateLimiter;
  /** 'client': one bucket per authenticated client, else per address; 'global': one bucket. */
  scope: RateLimitScope;
  refusals: RefusalMemory;
  /** Counts a refusal answered from memory (the limiter counts the decisions it takes itself). */
  onRecalledRefusal: () => void;
}

/** The bucket of a request without a valid token: its address (IPv6 by /64), as the proxy trust resolves it. */
export function addressLimitKey(ip: string): string {
  return `addr:${clientAddressKey(ip)}`;
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
 * Units are the draft's default ("requests"), so `qu` is omitted; no `pk`, as the key identifies the client.
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
 * Token-bucket rate limiting of everything the probes and the contract route did not answer (so a
 * path variant the routers do not serve is limited too, then 404). Our own middleware rather than
 * koa-ratelimit (6.x): that keeps a sliding-window log on the application's clock, has no burst
 * parameter, and turns a Redis error into a 500; here the limiter decides (Redis with an in-process
 * fallback) and never rejects, and this middleware only maps the decision onto HTTP.
 *
 * The key is the authenticated client (one budget however many addresses it uses), else the
 * address: ctx.ip under app.proxy/maxIpsCount from TRUST_PROXY_HOPS, so a client's own
 * X-Forwarded-For cannot pick a fresh bucket. A refusal is remembered until its Retry-After, so a
 * client that keeps sending is answered without Redis.
 */
export function rateLimit({ limiter, scope, refusals, onRecalledRefusal }: RateLimitOptions): Middleware<AuthState> {
  const policyHeader = policyField(limiter.policy);
  return async function rateLimitMiddleware(ctx, next) {
    const { principal } = ctx.state;
    const key = scope === 'global' ? 'global' : principal ? `client:${principal.clientId}` : addressLimitKey(ctx.ip);
    const recalled = refusals.recall(key);
    if (recalled) onRecalledRefusal();
    const decision = recalled ?? (await limiter.consume(key));
    ctx.set('RateLimit-Policy', policyHeader);
    ctx.set('RateLimit', rateLimitField(decision));
    if (!decision.allowed) {
      refusals.remember(key, decision.retryAfterMs);
      const retryAfter = wholeSecondsAtLeastOne(decision.retryAfterMs);
      ctx.set('Retry-After', String(retryAfter));
      sendProblem(ctx, problems.rateLimited(retryAfter));
      return;
    }
    await next();
  };
}
