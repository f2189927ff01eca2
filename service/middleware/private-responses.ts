import type { Middleware } from 'koa';

/**
 * API responses carry names and e-mail addresses: no shared or browser cache may keep them. With
 * authentication on, the answer also depends on who asks, which `Vary: Authorization` tells caches.
 */
export function privateResponses(varyOnAuthorization: boolean): Middleware {
  return function privateResponsesMiddleware(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    if (varyOnAuthorization) ctx.vary('Authorization');
    return next();
  };
}
