/**
 * What the two reference servers share with the service: the SQL and the JSON shapes of
 * service/users (toUser, the list page with an opaque keyset cursor). Kept tiny on purpose: the
 * reference servers must stay the leanest code that does the same work.
 */
export const USER_COLUMNS = 'id, name, email, created_at, updated_at';
export const SELECT_BY_ID = `SELECT ${USER_COLUMNS} FROM users WHERE id = $1`;
export const LIST_FIRST = `SELECT ${USER_COLUMNS} FROM users ORDER BY id ASC LIMIT $1`;
export const LIST_AFTER = `SELECT ${USER_COLUMNS} FROM users WHERE id > $2 ORDER BY id ASC LIMIT $1`;
export const INSERT = `INSERT INTO users (name, email) VALUES ($1, $2) RETURNING ${USER_COLUMNS}`;

/**
 * Every server's pool size (the service gets it as DB_POOL_MAX). Up to seven servers share one
 * PostgreSQL of max_connections=100 with other work, so 25 each (the service's default) could run
 * out; ten connections already keep a 2-core PostgreSQL busy.
 */
export const POOL_MAX = 10;

export interface UserRow {
  id: number;
  name: string;
  email: string;
  created_at: Date;
  updated_at: Date;
}

/** The cursor format of service/users/cursor.ts (base64url of `v1:<id>`). */
export function encodeCursor(lastId: number): string {
  return Buffer.from(`v1:${String(lastId)}`).toString('base64url');
}

export function decodeCursor(cursor: string): number | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.startsWith('v1:') ? Number(text.slice(3)) : NaN;
  return Number.isSafeInteger(id) && id > 0 ? id : undefined;
}

/** `{ items, next_cursor }` from limit+1 rows, as the service answers GET /api/users. */
export function listPage(rows: UserRow[], limit: number): { items: UserRow[]; next_cursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, next_cursor: rows.length > limit && last ? encodeCursor(last.id) : null };
}

/** The service's default and bounds for `limit`. */
export function parseLimit(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return 20;
  const limit = Number(value);
  return Number.isInteger(limit) && limit >= 1 && limit <= 100 ? limit : undefined;
}

export function listenPort(): number {
  const port = Number(process.env.PORT ?? '8080');
  if (!Number.isInteger(port)) throw new Error('PORT must be an integer');
  return port;
}

export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is required');
  return url;
}

/** A conditional merge patch, as the service runs it: the version check is in the WHERE clause. */
export const UPDATE = `UPDATE users SET name = COALESCE($3, name), email = COALESCE($4, email) WHERE id = $1 AND version = $2 RETURNING ${USER_COLUMNS}, version`;
export const EXISTS = 'SELECT 1 FROM users WHERE id = $1';

/** The row version a strong `If-Match: "<n>"` names (the service's ETags); undefined for any other field. */
export function ifMatchVersion(field: string | undefined): number | undefined {
  const match = /^"(\d{1,10})"$/.exec(field ?? '');
  return match ? Number(match[1]) : undefined;
}
