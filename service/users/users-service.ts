import { fingerprint, type IdempotencyKey, type StoredResponse } from './idempotency.js';
import type { KeyedCreationResult, ListPage, UsersRepository } from './repository.js';
import {
  UserNotFoundError,
  VersionMismatchError,
  normalizeEmail,
  type ExpectedVersion,
  type NewUser,
  type User,
  type UserChanges,
  type VersionedUser,
} from './user.js';

export interface UsersServiceOptions {
  /** How long an idempotency key and its stored response are kept. */
  idempotencyKeyTtlMs: number;
}

/** A keyed creation as the caller describes it: the key and how to answer a first success. */
export interface CreateIdempotently {
  key: IdempotencyKey;
  respond: (created: VersionedUser) => StoredResponse;
}

function matches(expected: ExpectedVersion, version: number): boolean {
  return expected === 'any' || expected.versions.includes(version);
}

/**
 * The users domain: normalisation, conditional writes and idempotent creation, over a repository.
 * It knows nothing of HTTP; the routes translate its results and errors into responses.
 */
export class UsersService {
  constructor(
    private readonly repository: UsersRepository,
    private readonly options: UsersServiceOptions,
  ) {}

  create(input: NewUser): Promise<VersionedUser> {
    return this.repository.create(normalized(input));
  }

  /** Creates once per key: a retry replays the first response (see the Idempotency* errors). */
  createIdempotently(input: NewUser, { key, respond }: CreateIdempotently): Promise<KeyedCreationResult> {
    const user = normalized(input);
    return this.repository.createWithKey(user, { key, fingerprint: fingerprint(user), ttlMs: this.options.idempotencyKeyTtlMs, respond });
  }

  async get(id: number): Promise<VersionedUser> {
    const found = await this.repository.findById(id);
    if (!found) throw new UserNotFoundError();
    return found;
  }

  /** Exact and case-insensitive, as e-mails are stored normalised (the unique index answers). */
  findByEmail(email: string): Promise<User | undefined> {
    return this.repository.findByEmail(normalizeEmail(email));
  }

  list(page: ListPage): Promise<User[]> {
    return this.repository.list(page);
  }

  /**
   * Applies a merge patch if the user is still at an expected version. An empty patch changes
   * nothing, so it writes nothing (the version stays); its precondition is still checked.
   */
  async update(id: number, changes: UserChanges, expected: ExpectedVersion): Promise<VersionedUser> {
    const normalizedChanges: UserChanges = {
      ...(changes.name === undefined ? {} : { name: changes.name.trim() }),
      ...(changes.email === undefined ? {} : { email: normalizeEmail(changes.email) }),
    };
    if (Object.keys(normalizedChanges).length > 0) return this.repository.update(id, normalizedChanges, expected);
    const current = await this.get(id);
    if (!matches(expected, current.version)) throw new VersionMismatchError();
    return current;
  }

  /** GDPR erasure: the row goes, and with it the person's data in stored idempotent responses. */
  erase(id: number, expected?: ExpectedVersion): Promise<void> {
    return this.repository.erase(id, expected);
  }
}

function normalized(user: NewUser): NewUser {
  return { name: user.name.trim(), email: normalizeEmail(user.email) };
}
