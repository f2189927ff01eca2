/**
 * The limit for one Node process: node:http and a pg Pool, nothing else. Same routes, SQL, pool
 * size and JSON shapes as the service; no logging, metrics, validation beyond what the SQL needs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { EXISTS, INSERT, LIST_AFTER, LIST_FIRST, POOL_MAX, SELECT_BY_ID, UPDATE, databaseUrl, decodeCursor, ifMatchVersion, listPage, listenPort, parseLimit, type UserRow } from '../shared.js';

const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL_MAX });
pool.on('error', () => undefined);

const BY_ID = /^\/api\/users\/(\d{1,10})$/;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')); });
    req.on('error', reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (req.method === 'GET' && path === '/health') {
    send(res, 200, { status: 'ok' });
    return;
  }
  if (req.method === 'GET') {
    const match = BY_ID.exec(path);
    if (match) {
      const { rows } = await pool.query<UserRow>(SELECT_BY_ID, [Number(match[1])]);
      const row = rows[0];
      if (row) send(res, 200, row);
      else send(res, 404, { status: 404, title: 'Not found' });
      return;
    }
  }
  if (req.method === 'PATCH') {
    const match = BY_ID.exec(path);
    if (match) {
      const version = ifMatchVersion(req.headers['if-match']);
      const input = JSON.parse(await readBody(req)) as { name?: unknown; email?: unknown };
      if (version === undefined) {
        send(res, 428, { status: 428, title: 'Precondition required' });
        return;
      }
      const name = typeof input.name === 'string' ? input.name.trim() : null;
      const email = typeof input.email === 'string' ? input.email.trim().toLowerCase() : null;
      const id = Number(match[1]);
      const { rows } = await pool.query<UserRow & { version: number }>(UPDATE, [id, version, name, email]);
      const row = rows[0];
      if (row) {
        const { version: updated, ...user } = row;
        send(res, 200, user, { ETag: `"${String(updated)}"` });
      } else if ((await pool.query(EXISTS, [id])).rows.length > 0) send(res, 412, { status: 412, title: 'Precondition failed' });
      else send(res, 404, { status: 404, title: 'Not found' });
      return;
    }
  }
  if (path === '/api/users' && req.method === 'GET') {
    const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    const limit = parseLimit(params.get('limit'));
    const cursor = params.get('cursor');
    const afterId = cursor === null ? undefined : decodeCursor(cursor);
    if (limit === undefined || (cursor !== null && afterId === undefined)) {
      send(res, 400, { status: 400, title: 'Invalid request' });
      return;
    }
    const { rows } = afterId === undefined
      ? await pool.query<UserRow>(LIST_FIRST, [limit + 1])
      : await pool.query<UserRow>(LIST_AFTER, [limit + 1, afterId]);
    send(res, 200, listPage(rows, limit));
    return;
  }
  if (path === '/api/users' && req.method === 'POST') {
    const input = JSON.parse(await readBody(req)) as { name?: unknown; email?: unknown };
    if (typeof input.name !== 'string' || typeof input.email !== 'string') {
      send(res, 400, { status: 400, title: 'Invalid request' });
      return;
    }
    try {
      const { rows } = await pool.query<UserRow>(INSERT, [input.name.trim(), input.email.trim().toLowerCase()]);
      const user = rows[0] as UserRow;
      send(res, 201, user, { Location: `/api/users/${String(user.id)}` });
    } catch (err) {
      if ((err as { code?: string }).code !== '23505') throw err;
      send(res, 409, { status: 409, title: 'E-mail already registered' });
    }
    return;
  }
  send(res, 404, { status: 404, title: 'Not found' });
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) send(res, 500, { status: 500, title: 'Internal server error' });
    else res.destroy();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(listenPort());
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool.end().finally(() => process.exit(0));
});
