import Router from '@koa/router';
import type { Counter } from 'prom-client';
import type { OperationValidators } from '../openapi/contract.js';
import { jsonBody } from '../middleware/json-body.js';
import { problems } from '../middleware/problem.js';
import { validate, type ValidatedInput } from '../middleware/validate.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { UsersRepository } from './repository.js';
import { DuplicateEmailError, type NewUser } from './user.js';

export interface UsersRoutesDeps {
  repository: UsersRepository;
  validators: Map<string, OperationValidators>;
  usersCreated: Counter;
  usersCreateConflicts: Counter;
}

type State = { input: ValidatedInput };

/** Surrounding whitespace is not part of a name or an address; trimming first lets " a@b.io " validate. */
function trimStrings(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const trimmed: Record<string, unknown> = { ...body };
  for (const key of ['name', 'email']) if (typeof trimmed[key] === 'string') trimmed[key] = trimmed[key].trim();
  return trimmed;
}

/** The users API: /api/users and /api/users/{id}, as openapi.yaml describes them. */
export function usersRouter({ repository, validators, usersCreated, usersCreateConflicts }: UsersRoutesDeps): Router<State> {
  // Case-sensitive and strict, like every router here: the one path rule of openapi/operations.ts.
  const router = new Router<State>({ sensitive: true, strict: true });

  router.get('/api/users', validate(validators.get('listUsers')), async (ctx) => {
    const { limit, cursor } = ctx.state.input.params as { limit: number; cursor?: string };
    const afterId = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && afterId === undefined) {
      throw problems.validation([{ field: 'cursor', message: 'is not a cursor this API issued' }]);
    }
    // One row more than asked tells whether another page exists without a COUNT.
    const rows = await repository.list({ limit: limit + 1, afterId });
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    ctx.body = { items, next_cursor: rows.length > limit && last ? encodeCursor(last.id) : null };
  });

  router.post(
    '/api/users',
    jsonBody(),
    async (ctx, next) => {
      ctx.request.body = trimStrings(ctx.request.body);
      await next();
    },
    validate(validators.get('createUser')),
    async (ctx) => {
      try {
        const user = await repository.create(ctx.state.input.body as NewUser);
        usersCreated.inc();
        ctx.status = 201;
        ctx.set('Location', `/api/users/${user.id}`);
        ctx.body = user;
      } catch (err) {
        if (!(err instanceof DuplicateEmailError)) throw err;
        usersCreateConflicts.inc();
        throw problems.duplicateEmail();
      }
    },
  );

  router.get('/api/users/:id', validate(validators.get('getUser')), async (ctx) => {
    const { id } = ctx.state.input.params as { id: number };
    const user = await repository.findById(id);
    if (!user) throw problems.notFound(`No user with id ${id}.`);
    ctx.body = user;
  });

  return router;
}
