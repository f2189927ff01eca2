import type { NewUser, User } from './user.js';

export interface ListPage {
  /** Page size. */
  limit: number;
  /** Return users with an id greater than this (keyset pagination); undefined for the first page. */
  afterId: number | undefined;
}

/**
 * Storage of users. Implementations throw DuplicateEmailError for a taken e-mail and
 * DependencyUnavailableError when the store cannot answer in time.
 */
export interface UsersRepository {
  create(user: NewUser): Promise<User>;
  findById(id: number): Promise<User | undefined>;
  /** Users in ascending id order. */
  list(page: ListPage): Promise<User[]>;
}
