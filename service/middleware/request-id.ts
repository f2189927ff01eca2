import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import { requestContext } from '../observability/logger.js';

/** Accept a caller's id only when it cannot inject anything into logs or headers. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Correlation id: the caller's X-Request-ID when sane, a fresh UUID otherwise. Returned in the
 * response and attached to every log line written while the request is served.
 */
export function requestId(): Middleware {
  return function requestIdMiddleware(ctx, next) {
    const incoming = ctx.get('X-Request-ID');
    const id = SANE_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-ID', id);
    return requestContext.run({ requestId: id }, next);
  };
}
