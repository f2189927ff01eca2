import type { Knex } from 'knex';
import type { Histogram } from 'prom-client';
import type { Tracing } from '../observability/tracing.js';
import { DependencyUnavailableError } from '../errors.js';
import { UNIQUE_VIOLATION, isUnavailable, sqlState } from '../db/errors.js';
import {
  IdempotencyKeyErasedError,
  IdempotencyKeyReusedError,
  IdempotencyRequestInProgressError,
  type StoredResponse,
} from './idempotency.js';
import type { KeyedCreation, KeyedCreationResult, ListPage, UsersRepository } from './repository.js';
import {
  DuplicateEmailError,
  UserNotFoundError,
  VersionMismatchError,
  type ExpectedVersion,
  type NewUser,
  type User,
  type UserChanges,
  type VersionedUser,
} from './user.js';

interface UserRow {
  id: number;
  name: string;
  email: string;
  created_at: string;
  updated_at: string;
  version: number;
}

interface KeyRow {
  fingerprint: string | null;
  status: number;
  location: string | null;
  etag: string | null;
  body: unknown;
  erased_at: Date | string | null;
}

/**
 * A timestamp as the API writes it (`Date.prototype.toISOString`: UTC, milliseconds, `Z`), formatted
 * by PostgreSQL: the driver then hands over the text as is, instead of parsing it into a Date that
 * toUser turns back into the same text (twice per user, 42 times per page of the list). Both
 * truncate the microseconds to milliseconds, so the text is identical.
 */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${column}`;
const COLUMNS = `id, name, email, ${iso('created_at')}, ${iso('updated_at')}, version`;

interface Statement {
  name: string;
  text: string;
}

/**
 * The service's SQL, written once. On PostgreSQL each runs as a named (prepared) statement: it is
 * parsed and planned once per pooled connection, and no query builder runs per request (the
 * builder and its compile step were about a fifth of the service's CPU per GET; see bench/).
 * A conditional write checks the version in its own WHERE clause: check and write are atomic.
 * `$2::int[] IS NULL` means "any version" (If-Match: * or no If-Match on DELETE).
 */
const STATEMENTS = {
  get: { name: 'users_get', text: `SELECT ${COLUMNS} FROM users WHERE id = $1` },
  exists: { name: 'users_exists', text: 'SELECT 1 AS found FROM users WHERE id = $1' },
  byEmail: { name: 'users_by_email', text: `SELECT ${COLUMNS} FROM users WHERE email = $1` },
  listFirst: { name: 'users_list_first', text: `SELECT ${COLUMNS} FROM users ORDER BY id ASC LIMIT $1` },
  listAfter: { name: 'users_list_after', text: `SELECT ${COLUMNS} FROM users WHERE id > $2 ORDER BY id ASC LIMIT $1` },
  create: { name: 'users_create', text: `INSERT INTO users (name, email) VALUES ($1, $2) RETURNING ${COLUMNS}` },
  update: {
    name: 'users_update',
    text: `UPDATE users SET name = COALESCE($3, name), email = COALESCE($4, email)
           WHERE id = $1 AND ($2::int[] IS NULL OR version = ANY($2::int[])) RETURNING ${COLUMNS}`,
  },
  erase: {
    name: 'users_erase',
    text: 'DELETE FROM users WHERE id = $1 AND ($2::int[] IS NULL OR version = ANY($2::int[])) RETURNING id',
  },
  // Inside the creation's transaction: the lock is held until commit or rollback, so a retry that
  // arrives meanwhile learns at once that the first is in progress instead of waiting for it.
  lockKey: { name: 'idempotency_lock', text: 'SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext($2)) AS locked' },
  dropExpiredKey: {
    name: 'idempotency_drop_expired',
    text: 'DELETE FROM idempotency_keys WHERE client_id = $1 AND key = $2 AND expires_at <= now()',
  },
  findKey: {
    name: 'idempotency_find',
    text: 'SELECT fingerprint, status, location, etag, body, erased_at FROM idempotency_keys WHERE client_id = $1 AND key = $2',
  },
  storeKey: {
    name: 'idempotency_store',
    text: `INSERT INTO idempotency_keys (client_id, key, fingerprint, user_id, status, location, etag, body, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, now() + $9::double precision * interval '1 millisecond')`,
  },
  // SKIP LOCKED: the purge never waits for a request, and replicas purging together share the work.
  purge: {
    name: 'idempotency_purge',
    text: `WITH expired AS (
             SELECT client_id, key FROM idempotency_keys WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
           ), purged AS (
             DELETE FROM idempotency_keys k USING expired e WHERE k.client_id = e.client_id AND k.key = e.key RETURNING 1
           ) SELECT count(*)::int AS purged FROM purged`,
  },
} as const satisfies Record<string, Statement>;

/** node-postgres' side of a pooled connection, as far as a prepared statement needs it. */
interface PgConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/** knex's client: its pool (tarn) hands out driver connections; acquire waits and timeouts stay knex's. */
interface KnexPgClient {
  config: { client?: unknown };
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<unknown>;
}

/** `$n` placeholders as knex's `?`, values in the order they appear (a `$n` may repeat). */
function forKnex(statement: Statement, values: unknown[]): [string, unknown[]] {
  const order = [...statement.text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]) - 1);
  return [statement.text.replace(/\$\d+/g, '?'), order.map((i) => values[i] ?? null)];
}

/** A version list as a PostgreSQL array literal (both drivers take it as text); null means any version. */
function versionsParam(expected: ExpectedVersion | undefined): string | null {
  if (expected === undefined || expected === 'any') return null;
  return `{${expected.versions.map((v) => String(Math.trunc(v))).join(',')}}`;
}

function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

function toVersioned(row: UserRow): VersionedUser {
  return { user: toUser(row), version: row.version };
}

/** The unique index decides, atomically: a read-then-write check would race. */
function duplicateEmail(err: unknown): unknown {
  return sqlState(err) === UNIQUE_VIOLATION ? new DuplicateEmailError({ cause: err }) : err;
}

export class KnexUsersRepository implements UsersRepository {
  /** Set on PostgreSQL (node-postgres); the embedded PGlite client runs the same SQL through knex.raw. */
  private readonly pg: KnexPgClient | undefined;

  constructor(
    private readonly db: Knex,
    private readonly queryDuration: Histogram<'operation'>,
    private readonly tracing: Tracing,
  ) {
    const client = db.client as KnexPgClient;
    this.pg = client.config.client === 'pg' ? client : undefined;
  }

  /** One statement: prepared on a pooled connection on PostgreSQL, else (PGlite, a transaction) through knex. */
  private async query<R>(statement: Statement, values: unknown[], trx?: Knex.Transaction): Promise<R[]> {
    const { pg } = this;
    if (pg && !trx) {
      const connection = await pg.acquireConnection();
      try {
        return (await connection.query({ name: statement.name, text: statement.text, values })).rows as R[];
      } finally {
        await pg.releaseConnection(connection);
      }
    }
    const [sql, bindings] = forKnex(statement, values);
    const result: { rows: R[] } = await (trx ?? this.db).raw(sql, bindings as Knex.RawBinding[]);
    return result.rows;
  }

  /** Times and traces the query, and turns driver errors into the repository's contract. */
  private async run<T>(operation: string, query: () => Promise<T>): Promise<T> {
    const end = this.queryDuration.startTimer({ operation });
    try {
      return await this.tracing.dbQuery(operation, query);
    } catch (err) {
      if (isUnavailable(err)) throw new DependencyUnavailableError('database', { cause: err });
      throw duplicateEmail(err);
    } finally {
      end();
    }
  }

  async create(user: NewUser): Promise<VersionedUser> {
    const rows = await this.run('users_create', () => this.query<UserRow>(STATEMENTS.create, [user.name, user.email]));
    return toVersioned(rows[0] as UserRow);
  }

  async createWithKey(user: NewUser, creation: KeyedCreation): Promise<KeyedCreationResult> {
    const { clientId, key } = creation.key;
    return this.run('users_create_keyed', () =>
      this.db.transaction(async (trx) => {
        const [lock] = await this.query<{ locked: boolean }>(STATEMENTS.lockKey, [clientId, key], trx);
        if (!lock?.locked) throw new IdempotencyRequestInProgressError();
        await this.query(STATEMENTS.dropExpiredKey, [clientId, key], trx);
        const [stored] = await this.query<KeyRow>(STATEMENTS.findKey, [clientId, key], trx);
        if (stored) return { replayed: replayOf(stored, creation.fingerprint) };

        const [row] = await this.query<UserRow>(STATEMENTS.create, [user.name, user.email], trx);
        const created = toVersioned(row as UserRow);
        const response = creation.respond(created);
        await this.query(
          STATEMENTS.storeKey,
          [clientId, key, creation.fingerprint, created.user.id, response.status, response.location, response.etag, JSON.stringify(response.body), creation.ttlMs],
          trx,
        );
        return { created, response };
      }),
    );
  }

  async findById(id: number): Promise<VersionedUser | undefined> {
    const [row] = await this.run('users_get', () => this.query<UserRow>(STATEMENTS.get, [id]));
    return row ? toVersioned(row) : undefined;
  }

  async findByEmail(email: string): Promise<User | undefined> {
    const [row] = await this.run('users_by_email', () => this.query<UserRow>(STATEMENTS.byEmail, [email]));
    return row ? toUser(row) : undefined;
  }

  async list({ limit, afterId }: ListPage): Promise<User[]> {
    const rows = await this.run('users_list', () =>
      afterId === undefined ? this.query<UserRow>(STATEMENTS.listFirst, [limit]) : this.query<UserRow>(STATEMENTS.listAfter, [limit, afterId]),
    );
    return rows.map(toUser);
  }

  async update(id: number, changes: UserChanges, expected: ExpectedVersion): Promise<VersionedUser> {
    const [row] = await this.run('users_update', () =>
      this.query<UserRow>(STATEMENTS.update, [id, versionsParam(expected), changes.name ?? null, changes.email ?? null]),
    );
    if (row) return toVersioned(row);
    throw await this.whyUnchanged(id);
  }

  async erase(id: number, expected: ExpectedVersion | undefined): Promise<void> {
    const [row] = await this.run('users_erase', () => this.query<{ id: number }>(STATEMENTS.erase, [id, versionsParam(expected)]));
    if (!row) throw await this.whyUnchanged(id);
  }

  async purgeExpiredKeys(batch: number): Promise<number> {
    const [row] = await this.run('idempotency_purge', () => this.query<{ purged: number }>(STATEMENTS.purge, [batch]));
    return row?.purged ?? 0;
  }

  /** A conditional write that matched no row: the user is gone, or at another version. */
  private async whyUnchanged(id: number): Promise<Error> {
    const [row] = await this.run('users_exists', () => this.query(STATEMENTS.exists, [id]));
    return row ? new VersionMismatchError() : new UserNotFoundError();
  }
}

function replayOf(stored: KeyRow, fingerprint: string): StoredResponse {
  if (stored.erased_at !== null) throw new IdempotencyKeyErasedError();
  if (stored.fingerprint !== fingerprint) throw new IdempotencyKeyReusedError();
  return { status: stored.status, location: stored.location ?? '', etag: stored.etag ?? '', body: stored.body };
}
