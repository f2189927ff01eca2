/**
 * Longest Authorization header read as a bearer token. Real access tokens are 1-2 KB; a longer
 * one is refused before any decoding or hashing. (Node refuses headers over 16 KiB with 431.)
 */
export const MAX_AUTHORIZATION_LENGTH = 8192;

/** RFC 6750 §2.1: `Bearer` (any case), one space, a token68. */
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

export type BearerResult = { token: string } | { error: 'missing' | 'invalid_request' };

/** The token of the Authorization header, the only place this service reads one from. */
export function bearerToken(header: string): BearerResult {
  if (header === '') return { error: 'missing' };
  if (header.length > MAX_AUTHORIZATION_LENGTH) return { error: 'invalid_request' };
  const token = BEARER.exec(header)?.[1];
  return token === undefined ? { error: 'invalid_request' } : { token };
}
