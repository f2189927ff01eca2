import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { traceLogFields, type TraceState } from '../observability/tracing.js';

/** Accept a caller's id only when it cannot inject anything into logs or headers. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** What request-id puts on ctx.state for the middleware and handlers after it. */
export interface RequestIdState {
  requestId: string;
}

interface RequestLogState extends Partial<RequestIdState>, TraceState {
  /** The logger this request's lines go to, and (made by the first line that needs it) its child bound to the id. */
  logger?: Logger;
  log?: Logger;
}

/**
 * Correlation id: the caller's X-Request-ID when sane, a fresh UUID otherwise. Returned in the
 * response, written on the access line and on every other line logged while serving the request
 * (requestLog), with the request's trace when it is traced.
 */
export function requestId(log: Logger): Middleware<RequestIdState> {
  return function requestIdMiddleware(ctx, next) {
    const incoming = ctx.get('X-Request-ID');
    const id = SANE_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    (ctx.state as RequestLogState).logger = log;
    ctx.set('X-Request-ID', id);
    return next();
  };
}

/**
 * The logger for a line about this request (`fallback` outside one): bound to its id and trace. Made on first use,
 * so the requests that log nothing but their access line (nearly all) never build one; a child
 * logger on the context rather than AsyncLocalStorage, whose hook on every promise bench/ measured
 * at about a quarter of a GET's CPU (Node 20).
 */
export function requestLog(ctx: Context, fallback: Logger): Logger {
  const state = ctx.state as RequestLogState;
  if (state.log) return state.log;
  if (state.requestId === undefined || state.logger === undefined) return fallback;
  state.log = state.logger.child({ requestId: state.requestId, ...traceLogFields(state) });
  return state.log;
}
