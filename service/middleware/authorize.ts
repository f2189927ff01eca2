import type { Middleware } from 'koa';
import type { Counter } from 'prom-client';
import type { AuthenticateState } from './authenticate.js';
import { problems } from './problem.js';

const REALM = 'realm="users-service"';

/**
 * Answers what `authenticate` found (RFC 6750 §3): no token → 401 with a bare challenge; a
 * malformed Authorization → 400 invalid_request; a token that does not verify → 401 invalid_token
 * (never why); keys unobtainable → 503; a valid token without the operation's scopes → 403
 * insufficient_scope naming them. Runs after the limiter, so each of these is counted against a budget.
 */
export function authorize(outcomes: Counter<'outcome'>): Middleware<AuthenticateState> {
  // The success path runs on every request: its counter is bound once, its scope list built only for a refusal.
  const authenticated = outcomes.labels('authenticated');
  return async function authorizeMiddleware(ctx, next) {
    const required = ctx.state.operation?.scopes;
    if (required === undefined) {
      await next();
      return;
    }
    const { principal, authFailure } = ctx.state;
    if (principal && required.every((s) => principal.scopes.has(s))) {
      authenticated.inc();
      await next();
      return;
    }
    const scope = `scope="${required.join(' ')}"`;
    if (!principal) {
      outcomes.inc({ outcome: authFailure ?? 'missing' });
      if (authFailure === 'unavailable') throw problems.unavailable('The identity provider cannot be reached to check the token; retry shortly.');
      if (authFailure === 'invalid_request') {
        ctx.set('WWW-Authenticate', `Bearer ${REALM}, error="invalid_request"`);
        throw problems.invalidAuthorization();
      }
      ctx.set('WWW-Authenticate', authFailure === 'invalid_token' ? `Bearer ${REALM}, error="invalid_token"` : `Bearer ${REALM}, ${scope}`);
      throw problems.unauthorized();
    }
    outcomes.inc({ outcome: 'insufficient_scope' });
    ctx.set('WWW-Authenticate', `Bearer ${REALM}, error="insufficient_scope", ${scope}`);
    throw problems.insufficientScope(required);
  };
}
