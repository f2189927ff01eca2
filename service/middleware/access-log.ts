import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { AuthState } from '../auth/principal.js';
import { traceLogFields, type TraceState } from '../observability/tracing.js';
import type { RequestIdState } from './request-id.js';
import { settleTiming, startTiming } from './request-timing.js';

/**
 * One line per request, after the response is decided. Redacted by construction: the line is
 * built from the named scalar fields below and nothing else (no headers, query string or body), so
 * no token, secret or personal data can reach it, and it skips the logger's path redaction (which
 * would only ever find these fields, at twice the cost of the line; see bench/).
 */
export function accessLog(log: Logger): Middleware<RequestIdState & AuthState & TraceState> {
  const lines = log.child({}, { redact: [] });
  return async function accessLogMiddleware(ctx, next) {
    startTiming(ctx);
    try {
      await next();
    } finally {
      const { route, ms } = settleTiming(ctx);
      const { state } = ctx;
      lines.info(
        {
          requestId: state.requestId,
          ...traceLogFields(state),
          method: ctx.method,
          route,
          path: ctx.path,
          // Who did it: the authenticated client, never its token.
          clientId: state.principal?.clientId,
          status: ctx.status,
          durationMs: Math.round(ms * 100) / 100,
        },
        'request',
      );
    }
  };
}
