import type { IdempotencyKey, StoredResponse } from './idempotency.js';
import type { ExpectedVersion, NewUser, User, UserChanges, VersionedUser } from './user.js';

export interface ListPage {
  /** Page size. */
  limit: number;
  /** Return users with an id greater than this (keyset pagination); undefined for the first page. */
  afterId: number | undefined;
}

/** A keyed creation: the key, the request's fingerprint, how long to keep it, and the response to store. */
export interface KeyedCreation {
  key: IdempotencyKey;
  fingerprint: string;
  ttlMs: number;
  respond: (created: VersionedUser) => StoredResponse;
}

export type KeyedCreationResult = { created: VersionedUser; response: StoredResponse } | { replayed: StoredResponse };

/**
 * Storage of users. Implementations throw DuplicateEmailError for a taken e-mail,
 * UserNotFoundError and VersionMismatchError from conditional writes, the Idempotency* errors from
 * keyed creation, and DependencyUnavailableError when the store cannot answer in time.
 * E-mails arrive normalised.
 */
export interface UsersRepository {
  create(user: NewUser): Promise<VersionedUser>;
  /**
   * Creates the user and records the key with its response in one transaction, or replays what the
   * key recorded. A second request with a key whose first is still running is refused, never run.
   */
  createWithKey(user: NewUser, creation: KeyedCreation): Promise<KeyedCreationResult>;
  findById(id: number): Promise<VersionedUser | undefined>;
  findByEmail(email: string): Promise<User | undefined>;
  /** Users in ascending id order. */
  list(page: ListPage): Promise<User[]>;
  /** Applies the changes only if the user is still at an expected version: check and write are one statement. */
  update(id: number, changes: UserChanges, expected: ExpectedVersion): Promise<VersionedUser>;
  /** Deletes the row (and, by the database's trigger, the person's data in stored responses). */
  erase(id: number, expected: ExpectedVersion | undefined): Promise<void>;
  /** Deletes up to `batch` expired idempotency keys; returns how many went. */
  purgeExpiredKeys(batch: number): Promise<number>;
}
