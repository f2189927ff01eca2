import type { Knex } from 'knex';
import type { Histogram } from 'prom-client';
import type { Tracing } from '../observability/tracing.js';
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

/**
 * The hot path's SQL, written once. On PostgreSQL each runs as a named (prepared) statement: it is
 * parsed and planned once per pooled connection, and no query builder runs per request (the
 * builder and its compile step were about a fifth of the service's CPU per GET; see bench/).
 */
const SELECT = `SELECT ${COLUMNS.join(', ')} FROM users`;
const STATEMENTS = {
  get: { name: 'users_get', text: `${SELECT} WHERE id = $1` },
  listFirst: { name: 'users_list_first', text: `${SELECT} ORDER BY id ASC LIMIT $1` },
  listAfter: { name: 'users_list_after', text: `${SELECT} WHERE id > $2 ORDER BY id ASC LIMIT $1` },
  create: { name: 'users_create', text: `INSERT INTO users (name, email) VALUES ($1, $2) RETURNING ${COLUMNS.join(', ')}` },
} as const;

/** node-postgres' side of a pooled connection, as far as a prepared statement needs it. */
interface PgConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: UserRow[] }>;
}

/** knex's client: its pool (tarn) hands out driver connections; acquire waits and timeouts stay knex's. */
interface KnexPgClient {
  config: { client?: unknown };
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<unknown>;
}

function isoString(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    created_at: isoString(row.created_at),
    updated_at: isoString(row.updated_at),
  };
}

export class KnexUsersRepository implements UsersRepository {
  /** Set on PostgreSQL (node-postgres); the embedded PGlite client keeps the query builder. */
  private readonly pg: KnexPgClient | undefined;

  constructor(
    private readonly db: Knex,
    private readonly queryDuration: Histogram<'operation'>,
    private readonly tracing: Tracing,
  ) {
    const client = db.client as KnexPgClient;
    this.pg = client.config.client === 'pg' ? client : undefined;
  }

  /** One prepared statement on a connection from knex's pool (same pool, limits and metrics). */
  private async prepared(pg: KnexPgClient, statement: { name: string; text: string }, values: unknown[]): Promise<UserRow[]> {
    const connection = await pg.acquireConnection();
    try {
      const result = await connection.query({ name: statement.name, text: statement.text, values });
      return result.rows;
    } finally {
      await pg.releaseConnection(connection);
    }
  }

  /** Times and traces the query, and turns driver errors into the repository's contract. */
  private async run<T>(operation: string, query: () => Promise<T>): Promise<T> {
    const end = this.queryDuration.startTimer({ operation });
    try {
      return await this.tracing.dbQuery(operation, query);
    } catch (err) {
      if (isUnavailable(err)) throw new DependencyUnavailableError('database', { cause: err });
      throw err;
    } finally {
      end();
    }
  }

  async create(user: NewUser): Promise<User> {
    try {
      const { pg } = this;
      const email = normalizeEmail(user.email);
      const rows = await this.run('users_create', () =>
        pg
          ? this.prepared(pg, STATEMENTS.create, [user.name, email])
          : this.db<UserRow>('users').insert({ name: user.name, email }).returning<UserRow[]>(COLUMNS),
      );
      return toUser(rows[0] as UserRow);
    } catch (err) {
      // The unique index decides, atomically: a read-then-write check would race.
      if (sqlState(err) === UNIQUE_VIOLATION) throw new DuplicateEmailError({ cause: err });
      throw err;
    }
  }

  async findById(id: number): Promise<User | undefined> {
    const { pg } = this;
    const row = await this.run('users_get', async () =>
      pg
        ? (await this.prepared(pg, STATEMENTS.get, [id]))[0]
        : this.db<UserRow>('users').first<UserRow | undefined>(COLUMNS).where({ id }),
    );
    return row ? toUser(row) : undefined;
  }

  async list({ limit, afterId }: ListPage): Promise<User[]> {
    const { pg } = this;
    const rows = await this.run('users_list', () => {
      if (pg) {
        return afterId === undefined
          ? this.prepared(pg, STATEMENTS.listFirst, [limit])
          : this.prepared(pg, STATEMENTS.listAfter, [limit, afterId]);
      }
      const query = this.db<UserRow>('users').select<UserRow[]>(COLUMNS).orderBy('id', 'asc').limit(limit);
      return afterId === undefined ? query : query.where('id', '>', afterId);
    });
    return rows.map(toUser);
  }
}
