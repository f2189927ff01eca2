import type { Knex } from 'knex';
import type { Histogram } from 'prom-client';
import { DependencyUnavailableError } from '../errors.js';
import { UNIQUE_VIOLATION, isUnavailable, sqlState } from '../db/errors.js';
import type { ListPage, UsersRepository } from './repository.js';
import { DuplicateEmailError, normalizeEmail, type NewUser, type User } from './user.js';

interface UserRow {
  id: number;
  name: string;
  email: string;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS = ['id', 'name', 'email', 'created_at', 'updated_at'];

function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

export class KnexUsersRepository implements UsersRepository {
  constructor(
    private readonly db: Knex,
    private readonly queryDuration: Histogram<'operation'>,
  ) {}

  /** Times the query and turns driver errors into the repository's contract. */
  private async run<T>(operation: string, query: () => Promise<T>): Promise<T> {
    const end = this.queryDuration.startTimer({ operation });
    try {
      return await query();
    } catch (err) {
      if (isUnavailable(err)) throw new DependencyUnavailableError('database', { cause: err });
      throw err;
    } finally {
      end();
    }
  }

  async create(user: NewUser): Promise<User> {
    try {
      const rows = await this.run('users_create', () =>
        this.db<UserRow>('users')
          .insert({ name: user.name, email: normalizeEmail(user.email) })
          .returning<UserRow[]>(COLUMNS),
      );
      return toUser(rows[0] as UserRow);
    } catch (err) {
      // The unique index decides, atomically: a read-then-write check would race.
      if (sqlState(err) === UNIQUE_VIOLATION) throw new DuplicateEmailError({ cause: err });
      throw err;
    }
  }

  async findById(id: number): Promise<User | undefined> {
    const row = await this.run('users_get', () => this.db<UserRow>('users').first<UserRow | undefined>(COLUMNS).where({ id }));
    return row ? toUser(row) : undefined;
  }

  async list({ limit, afterId }: ListPage): Promise<User[]> {
    const rows = await this.run('users_list', () => {
      const query = this.db<UserRow>('users').select<UserRow[]>(COLUMNS).orderBy('id', 'asc').limit(limit);
      return afterId === undefined ? query : query.where('id', '>', afterId);
    });
    return rows.map(toUser);
  }
}
