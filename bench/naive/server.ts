/**
 * The peer a user would otherwise write: Koa, @koa/router, @koa/bodyparser and knex, no other
 * middleware. Same routes, pool size and JSON shapes as the service.
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';
import knexFactory from 'knex';
import { POOL_MAX, databaseUrl, decodeCursor, ifMatchVersion, listPage, listenPort, parseLimit, type UserRow } from '../shared.js';

const COLUMNS = ['id', 'name', 'email', 'created_at', 'updated_at'];
const knex = knexFactory({ client: 'pg', connection: databaseUrl(), pool: { min: 2, max: POOL_MAX } });

const router = new Router();
router.get('/health', (ctx) => {
  ctx.body = { status: 'ok' };
});
router.get('/api/users/:id', async (ctx) => {
  const id = Number(ctx.params.id);
  const user = await knex<UserRow>('users').first(COLUMNS).where({ id });
  if (user) ctx.body = user;
  else {
    ctx.status = 404;
    ctx.body = { status: 404, title: 'Not found' };
  }
});
router.get('/api/users', async (ctx) => {
  const limit = parseLimit(typeof ctx.query.limit === 'string' ? ctx.query.limit : undefined);
  const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
  const afterId = cursor === undefined ? undefined : decodeCursor(cursor);
  if (limit === undefined || (cursor !== undefined && afterId === undefined)) {
    ctx.status = 400;
    ctx.body = { status: 400, title: 'Invalid request' };
    return;
  }
  const query = knex<UserRow>('users').select<UserRow[]>(COLUMNS).orderBy('id', 'asc').limit(limit + 1);
  const rows = afterId === undefined ? await query : await query.where('id', '>', afterId);
  ctx.body = listPage(rows, limit);
});
router.post('/api/users', async (ctx) => {
  const input = ctx.request.body as { name?: unknown; email?: unknown } | undefined;
  if (typeof input?.name !== 'string' || typeof input.email !== 'string') {
    ctx.status = 400;
    ctx.body = { status: 400, title: 'Invalid request' };
    return;
  }
  try {
    const [user] = await knex<UserRow>('users')
      .insert({ name: input.name.trim(), email: input.email.trim().toLowerCase() })
      .returning<UserRow[]>(COLUMNS);
    ctx.status = 201;
    ctx.set('Location', `/api/users/${String(user?.id)}`);
    ctx.body = user;
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    ctx.status = 409;
    ctx.body = { status: 409, title: 'E-mail already registered' };
  }
});
router.patch('/api/users/:id', async (ctx) => {
  const id = Number(ctx.params.id);
  const version = ifMatchVersion(ctx.get('If-Match'));
  if (version === undefined) {
    ctx.status = 428;
    ctx.body = { status: 428, title: 'Precondition required' };
    return;
  }
  const input = ctx.request.body as { name?: unknown; email?: unknown } | undefined;
  const changes = {
    ...(typeof input?.name === 'string' ? { name: input.name.trim() } : {}),
    ...(typeof input?.email === 'string' ? { email: input.email.trim().toLowerCase() } : {}),
  };
  const [row] = await knex<UserRow & { version: number }>('users')
    .where({ id, version })
    .update(changes)
    .returning<(UserRow & { version: number })[]>([...COLUMNS, 'version']);
  if (row) {
    const { version: updated, ...user } = row;
    ctx.set('ETag', `"${String(updated)}"`);
    ctx.body = user;
  } else if (await knex('users').first('id').where({ id })) {
    ctx.status = 412;
    ctx.body = { status: 412, title: 'Precondition failed' };
  } else {
    ctx.status = 404;
    ctx.body = { status: 404, title: 'Not found' };
  }
});

const app = new Koa();
// lodash.merge replaces the default list index by index: name application/json again.
app.use(bodyParser({ extendTypes: { json: ['application/json', 'application/merge-patch+json'] } }));
app.use(router.routes());
app.use(router.allowedMethods());
const server = app.listen(listenPort());
server.keepAliveTimeout = 65_000;
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void knex.destroy().finally(() => process.exit(0));
});
