import type { Middleware } from 'koa';
import { bearerToken } from '../auth/bearer.js';
import { KeysUnavailableError } from '../auth/errors.js';
import type { AuthState } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/token-verifier.js';
import type { RefusalMemory } from '../ratelimit/refusals.js';
import type { OperationState } from './operation.js';
import { addressLimitKey } from './rate-limit.js';

/** Why a request to a protected operation carries no principal; `authorize` turns it into the answer. */
export type AuthFailure = 'missing' | 'invalid_request' | 'invalid_token' | 'unavailable';

export interface AuthenticateState extends AuthState, OperationState {
  authFailure?: AuthFailure;
}

/**
 * Puts the caller of a protected operation on ctx.state.principal. Decides nothing itself: the
 * limiter runs next (per client with a principal, per address without), then `authorize` answers.
 * A token already verified costs a hash lookup; verifying a new one costs a signature check, which
 * an address already refused by the limiter does not get to spend: it is left unverified, so the
 * limiter answers it from its memory of refusals.
 */
export function authenticate(verifier: TokenVerifier, refusals: RefusalMemory): Middleware<AuthenticateState> {
  async function identify(authorization: string, ip: string): Promise<Pick<AuthenticateState, 'principal' | 'authFailure'>> {
    const bearer = bearerToken(authorization);
    if ('error' in bearer) return { authFailure: bearer.error };
    const known = verifier.cached(bearer.token);
    if (known) return { principal: known };
    if (refusals.recall(addressLimitKey(ip))) return { authFailure: 'invalid_token' };
    try {
      return { principal: await verifier.verify(bearer.token) };
    } catch (err) {
      return { authFailure: err instanceof KeysUnavailableError ? 'unavailable' : 'invalid_token' };
    }
  }
  return async function authenticateMiddleware(ctx, next) {
    if (ctx.state.operation?.scopes !== undefined) Object.assign(ctx.state, await identify(ctx.get('Authorization'), ctx.ip));
    await next();
  };
}
