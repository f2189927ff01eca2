/** A user as the API shows it. */
export interface User {
  id: number;
  name: string;
  email: string;
  created_at: string;
  updated_at: string;
}

export interface NewUser {
  name: string;
  email: string;
}

/** The members a merge patch may change; absent members stay as they are. */
export type UserChanges = Partial<NewUser>;

/** A user with the row version the database bumps on every update (the source of its ETag). */
export interface VersionedUser {
  user: User;
  version: number;
}

/**
 * What a conditional write expects to find: any of these versions, or `any` for an existing user
 * whatever its version (`If-Match: *`).
 */
export type ExpectedVersion = { versions: readonly number[] } | 'any';

/** One identity per mailbox: `Alice@Example.com ` and `alice@example.com` are the same user. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Raised by a repository when the e-mail is already registered. */
export class DuplicateEmailError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('e-mail already registered', options);
    this.name = 'DuplicateEmailError';
  }
}

/** No user has this id (never had, or was erased). */
export class UserNotFoundError extends Error {
  constructor() {
    super('no such user');
    this.name = 'UserNotFoundError';
  }
}

/** The user exists, but not in the version the caller expected: someone else changed it first. */
export class VersionMismatchError extends Error {
  constructor() {
    super('the user has changed since the expected version');
    this.name = 'VersionMismatchError';
  }
}
