import type { Middleware } from 'koa';

/**
 * While the process drains, every response carries `Connection: close`, so keep-alive clients
 * reconnect (to another pod) instead of reusing a socket that is about to go away.
 */
export function closeConnectionsWhileDraining(isDraining: () => boolean): Middleware {
  return async function drainMiddleware(ctx, next) {
    await next();
    if (isDraining()) ctx.set('Connection', 'close');
  };
}
