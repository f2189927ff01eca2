import Router from '@koa/router';
import type { Context } from 'koa';
import type { Counter } from 'prom-client';
import type { Principal } from '../auth/principal.js';
import type { OperationValidators } from '../openapi/contract.js';
import { jsonBody } from '../middleware/json-body.js';
import { ifMatchTags, noneMatchHits, strongEtag } from '../middleware/preconditions.js';
import { problems } from '../middleware/problem.js';
import { validate, type ValidatedInput } from '../middleware/validate.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import {
  IdempotencyKeyErasedError,
  IdempotencyKeyReusedError,
  IdempotencyRequestInProgressError,
  type StoredResponse,
} from './idempotency.js';
import {
  DuplicateEmailError,
  UserNotFoundError,
  VersionMismatchError,
  type ExpectedVersion,
  type NewUser,
  type UserChanges,
  type VersionedUser,
} from './user.js';
import type { UsersService } from './users-service.js';

export interface UsersRoutesDeps {
  users: UsersService;
  validators: Map<string, OperationValidators>;
  metrics: {
    usersCreated: Counter;
    usersCreateConflicts: Counter;
    usersUpdated: Counter;
    usersErased: Counter;
    idempotentReplays: Counter;
  };
}

type State = { input: ValidatedInput; principal?: Principal };

/** RFC 7396 is the one patch format this API takes; 415 answers name it in Accept-Patch. */
const MERGE_PATCH = 'application/merge-patch+json';

/** Surrounding whitespace is not part of a name or an address; trimming first lets " a@b.io " validate. */
function trimStrings(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const trimmed: Record<string, unknown> = { ...body };
  for (const key of ['name', 'email']) if (typeof trimmed[key] === 'string') trimmed[key] = trimmed[key].trim();
  return trimmed;
}

/** The ETags an If-Match field lists, as versions; other tags cannot be ours and match nothing. */
function expectedVersion(field: string): ExpectedVersion {
  const tags = ifMatchTags(field);
  if (tags === '*') return 'any';
  return { versions: tags.filter((tag) => /^\d{1,10}$/.test(tag)).map(Number) };
}

/** The draft's Idempotency-Key is a structured-field string (the key is between the quotes); a bare key is taken as is. */
function idempotencyKey(field: unknown): string | undefined {
  if (typeof field !== 'string') return undefined;
  return field.startsWith('"') ? field.slice(1, -1).replace(/\\(["\\])/g, '$1') : field;
}

function created({ user, version }: VersionedUser): StoredResponse {
  return { status: 201, location: `/api/users/${user.id}`, etag: strongEtag(version), body: user };
}

function send(ctx: Context, response: StoredResponse): void {
  ctx.status = response.status;
  ctx.set('Location', response.location);
  ctx.set('ETag', response.etag);
  ctx.body = response.body;
}

/** Domain errors, as the problems the contract documents for them. */
function toProblem(err: unknown): unknown {
  if (err instanceof UserNotFoundError) return problems.notFound('No user with this id.');
  if (err instanceof VersionMismatchError) return problems.preconditionFailed();
  if (err instanceof DuplicateEmailError) return problems.duplicateEmail();
  if (err instanceof IdempotencyRequestInProgressError) return problems.idempotencyRequestInProgress();
  if (err instanceof IdempotencyKeyReusedError) return problems.idempotencyKeyReused();
  if (err instanceof IdempotencyKeyErasedError) return problems.idempotencyKeyErased();
  return err;
}

/** The users API: /api/users and /api/users/{id}, as openapi.yaml describes them. */
export function usersRouter({ users, validators, metrics }: UsersRoutesDeps): Router<State> {
  // Case-sensitive and strict, like every router here: the one path rule of openapi/operations.ts.
  const router = new Router<State>({ sensitive: true, strict: true });
  router.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof DuplicateEmailError && ctx.method === 'POST') metrics.usersCreateConflicts.inc();
      throw toProblem(err);
    }
  });

  router.get('/api/users', validate(validators.get('listUsers')), async (ctx) => {
    const { limit, cursor, email } = ctx.state.input.params as { limit: number; cursor?: string; email?: string };
    if (email !== undefined) {
      if (cursor !== undefined) throw problems.validation([{ field: 'cursor', message: 'cannot be combined with email' }]);
      const user = await users.findByEmail(email);
      ctx.body = { items: user ? [user] : [], next_cursor: null };
      return;
    }
    const afterId = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && afterId === undefined) {
      throw problems.validation([{ field: 'cursor', message: 'is not a cursor this API issued' }]);
    }
    // One row more than asked tells whether another page exists without a COUNT.
    const rows = await users.list({ limit: limit + 1, afterId });
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
      const input = ctx.state.input.body as NewUser;
      const key = idempotencyKey(ctx.state.input.headers['Idempotency-Key']);
      if (key === undefined) {
        send(ctx, created(await users.create(input)));
        metrics.usersCreated.inc();
        return;
      }
      const clientId = ctx.state.principal?.clientId ?? 'anonymous';
      const result = await users.createIdempotently(input, { key: { clientId, key }, respond: created });
      if ('replayed' in result) {
        metrics.idempotentReplays.inc();
        ctx.set('Idempotent-Replayed', 'true');
        send(ctx, result.replayed);
      } else {
        metrics.usersCreated.inc();
        send(ctx, result.response);
      }
    },
  );

  router.get('/api/users/:id', validate(validators.get('getUser')), async (ctx) => {
    const { id } = ctx.state.input.params as { id: number };
    const { user, version } = await users.get(id);
    const etag = strongEtag(version);
    ctx.set('ETag', etag);
    if (noneMatchHits(ctx.get('If-None-Match'), etag)) {
      ctx.status = 304;
      return;
    }
    ctx.body = user;
  });

  router.patch(
    '/api/users/:id',
    async (ctx, next) => {
      // Accept-Patch on the 415 tells the client which format to send instead.
      if (!ctx.request.is(MERGE_PATCH)) ctx.set('Accept-Patch', MERGE_PATCH);
      await next();
    },
    jsonBody(MERGE_PATCH),
    async (ctx, next) => {
      ctx.request.body = trimStrings(ctx.request.body);
      await next();
    },
    validate(validators.get('patchUser')),
    async (ctx) => {
      const { id } = ctx.state.input.params as { id: number };
      const ifMatch = ctx.get('If-Match');
      if (ifMatch === '') throw problems.preconditionRequired();
      const { user, version } = await users.update(id, ctx.state.input.body as UserChanges, expectedVersion(ifMatch));
      metrics.usersUpdated.inc();
      ctx.set('ETag', strongEtag(version));
      ctx.body = user;
    },
  );

  router.delete('/api/users/:id', validate(validators.get('deleteUser')), async (ctx) => {
    const { id } = ctx.state.input.params as { id: number };
    const ifMatch = ctx.get('If-Match');
    await users.erase(id, ifMatch === '' ? undefined : expectedVersion(ifMatch));
    metrics.usersErased.inc();
    ctx.status = 204;
  });

  return router;
}
