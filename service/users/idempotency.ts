import { createHash } from 'node:crypto';
import type { NewUser } from './user.js';

/**
 * Idempotent creation (draft-ietf-httpapi-idempotency-key-header): the first request with a key
 * stores its response; a retry gets that response again instead of a second user.
 */

/** A client's key. Keys are scoped per client, so two clients may pick the same one. */
export interface IdempotencyKey {
  clientId: string;
  key: string;
}

/** The response recorded for a key, replayed verbatim to a retry. */
export interface StoredResponse {
  status: number;
  location: string;
  etag: string;
  body: unknown;
}

/**
 * The request's identity, compared on retry. Taken over the normalised input, so a retry that
 * differs only in what creation normalises away (case of the e-mail, surrounding spaces) is the
 * same request, as it would create the same user.
 */
export function fingerprint(user: NewUser): string {
  return createHash('sha256').update(JSON.stringify([user.name, user.email])).digest('base64url');
}

/** The first request with this key is still running; retry once it has answered. */
export class IdempotencyRequestInProgressError extends Error {
  constructor() {
    super('a request with this idempotency key is in progress');
    this.name = 'IdempotencyRequestInProgressError';
  }
}

/** The key was used for a request with a different body. */
export class IdempotencyKeyReusedError extends Error {
  constructor() {
    super('idempotency key reused with a different request');
    this.name = 'IdempotencyKeyReusedError';
  }
}

/** The user this key created has been erased since, and its stored response with it. */
export class IdempotencyKeyErasedError extends Error {
  constructor() {
    super('the user created with this idempotency key has been erased');
    this.name = 'IdempotencyKeyErasedError';
  }
}
