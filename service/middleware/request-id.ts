import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { traceLogFields, type TraceState } from '../observability/tracing.js';

/** Accept a caller's id only when it cannot inject anything into logs or headers. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** What request-id puts on ctx.state for the middleware and handlers after it. */
export interface RequestLogState {
  requestId: string;
  /** The app's logger bound to this request's id: every line it writes carries `requestId`. */
  log: Logger;
}

/**
 * Correlation id: the caller's X-Request-ID when sane, a fresh UUID otherwise. Returned in the
 * response, and bound into a child logger for everything that logs while serving the request,
 * with the request's trace when it is traced.
 * A child logger on the context rather than AsyncLocalStorage: on Node 20 the latter puts a hook
 * on every promise of every request, which bench/ measured at about a quarter of a GET's CPU.
 */
export function requestId(log: Logger): Middleware<RequestLogState> {
  return function requestIdMiddleware(ctx, next) {
    const incoming = ctx.get('X-Request-ID');
    const id = SANE_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.state.log = log.child({ requestId: id, ...traceLogFields(ctx.state as TraceState) });
    ctx.set('X-Request-ID', id);
    return next();
  };
}

/** The request's logger, or `fallback` outside a request (never expected in the app). */
export function requestLog(ctx: Context, fallback: Logger): Logger {
  return (ctx.state as Partial<RequestLogState>).log ?? fallback;
}
