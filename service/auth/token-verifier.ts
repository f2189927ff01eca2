import { hash } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { InvalidTokenError, KeysUnavailableError } from './errors.js';
import type { Principal } from './principal.js';

/** Asymmetric only: `none` and HMAC (whose "secret" an attacker could take from the public JWKS) are refused. */
export const ALLOWED_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
/** Clock skew tolerated between the issuer and this service for exp/nbf/iat. */
export const CLOCK_TOLERANCE_SECONDS = 30;

export interface TokenVerifierOptions {
  issuer: string;
  audience: string;
  getKey: JWTVerifyGetKey;
  /** Verified tokens remembered (least recently used forgotten first). */
  cacheSize?: number;
}

/**
 * The cache key of a token: its SHA-256, so the token itself (a credential) is never kept. The
 * one-shot hash() costs less than half of createHash().update().digest() on every request.
 */
function cacheKey(token: string): string {
  return hash('sha256', token, 'base64url');
}

interface Cached {
  principal: Principal;
  expiresAtMs: number;
}

function principalOf(payload: JWTPayload): Principal {
  const clientId = typeof payload.client_id === 'string' ? payload.client_id : payload.sub;
  if (!clientId) throw new InvalidTokenError('token names no client_id or sub');
  const scopes = new Set(typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : []);
  return { clientId, ...(payload.sub === undefined ? {} : { subject: payload.sub }), scopes };
}

/**
 * Verifies RFC 9068 access tokens (JWTs typed `at+jwt`) and remembers the verified ones, keyed by
 * a hash of the token (the token itself is a credential and is never kept), until their `exp`:
 * a client reusing its token pays the signature check once.
 */
export class TokenVerifier {
  private readonly cache = new Map<string, Cached>();
  private readonly cacheSize: number;

  constructor(private readonly options: TokenVerifierOptions) {
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  /** The principal of a token verified earlier and not yet expired; no cryptography. */
  cached(token: string): Principal | undefined {
    const key = cacheKey(token);
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    this.cache.delete(key);
    if (Date.now() >= hit.expiresAtMs) return undefined;
    this.cache.set(key, hit);
    return hit.principal;
  }

  /** Throws InvalidTokenError, or KeysUnavailableError when the issuer's keys cannot be fetched. */
  async verify(token: string): Promise<Principal> {
    const { issuer, audience, getKey } = this.options;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer,
        audience,
        algorithms: ALLOWED_ALGORITHMS,
        typ: 'at+jwt',
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (err instanceof KeysUnavailableError) throw err;
      if (err instanceof errors.JOSEError || err instanceof TypeError) throw new InvalidTokenError(err.message, { cause: err });
      throw err;
    }
    const principal = principalOf(payload);
    const key = cacheKey(token);
    this.cache.set(key, { principal, expiresAtMs: (payload.exp as number) * 1000 });
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value as string);
    return principal;
  }
}
