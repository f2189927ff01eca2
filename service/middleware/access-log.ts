import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { AuthState } from '../auth/principal.js';
import { requestLog } from './request-id.js';
import { routeTemplate } from './route-template.js';

/** One line per request, after the response is decided, on the request's own logger (its id). */
export function accessLog(log: Logger): Middleware {
  return async function accessLogMiddleware(ctx, next) {
    const start = performance.now();
    try {
      await next();
    } finally {
      requestLog(ctx, log).info(
        {
          method: ctx.method,
          route: routeTemplate(ctx),
          path: ctx.path,
          // Who did it: the authenticated client, never its token.
          clientId: (ctx.state as AuthState).principal?.clientId,
          status: ctx.status,
          durationMs: Math.round((performance.now() - start) * 100) / 100,
        },
        'request',
      );
    }
  };
}
