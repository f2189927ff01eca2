import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { DependencyUnavailableError } from '../errors.js';
import type { FieldError } from '../openapi/contract.js';
import { requestLog } from './request-id.js';

/**
 * RFC 9457 problem details: the one error format of this API. Each kind has a stable `type` URI
 * that documents it (docs/problems.md).
 */
const PROBLEM_CONTENT_TYPE = 'application/problem+json';
const PROBLEM_DOCS = 'https://github.com/example/users-service/blob/main/docs/problems.md';

export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    readonly title: string,
    readonly detail: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = 'Problem';
  }
}

export const problems = {
  validation: (errors: FieldError[]) =>
    new Problem(400, 'validation', 'Invalid request', 'The request does not match the API contract.', { errors }),
  malformedJson: () =>
    new Problem(400, 'malformed-json', 'Malformed JSON', 'The request body is not valid JSON.', {
      errors: [{ field: '(body)', message: 'is not valid JSON' }],
    }),
  unauthorized: () =>
    new Problem(401, 'unauthorized', 'Unauthorized', 'A valid bearer token is required; see WWW-Authenticate.'),
  invalidAuthorization: () =>
    new Problem(400, 'invalid-authorization', 'Invalid Authorization header', 'Send the token as `Authorization: Bearer <token>`.', {
      errors: [{ field: '(header) Authorization', message: 'is not a bearer token' }],
    }),
  insufficientScope: (scopes: readonly string[]) =>
    new Problem(403, 'insufficient-scope', 'Insufficient scope', `The token lacks the scope this operation requires: ${scopes.join(' ')}.`),
  notFound: (detail = 'No resource at this path.') => new Problem(404, 'not-found', 'Not found', detail),
  methodNotAllowed: (method: string) =>
    new Problem(405, 'method-not-allowed', 'Method not allowed', `${method} is not allowed on this resource; see Allow.`),
  duplicateEmail: () =>
    new Problem(409, 'duplicate-email', 'E-mail already registered', 'A user with this e-mail already exists.'),
  payloadTooLarge: (limit: string) =>
    new Problem(413, 'payload-too-large', 'Payload too large', `The request body exceeds ${limit}.`),
  unsupportedMediaType: (mediaType = 'application/json') =>
    new Problem(415, 'unsupported-media-type', 'Unsupported media type', `Send the body as ${mediaType}.`),
  preconditionFailed: () =>
    new Problem(412, 'precondition-failed', 'Precondition failed', 'The user has changed since the ETag in If-Match; GET it again and reapply your change.'),
  preconditionRequired: () =>
    new Problem(428, 'precondition-required', 'Precondition required', 'Send If-Match with the ETag of the user you read, so no other change is overwritten.'),
  idempotencyRequestInProgress: () =>
    new Problem(409, 'idempotency-request-in-progress', 'Request in progress', 'A request with this Idempotency-Key is still being processed; retry shortly.'),
  idempotencyKeyReused: () =>
    new Problem(422, 'idempotency-key-reused', 'Idempotency-Key reused', 'This Idempotency-Key was used for a request with a different body; use a new key.'),
  idempotencyKeyErased: () =>
    new Problem(410, 'idempotency-key-erased', 'Created user erased', 'The user created with this Idempotency-Key has been erased; use a new key to create it again.'),
  rateLimited: (retryAfterSeconds: number) =>
    new Problem(429, 'rate-limited', 'Too many requests', `Request budget spent; retry in ${retryAfterSeconds} s.`),
  unavailable: (detail = 'A dependency is unavailable; retry shortly.') =>
    new Problem(503, 'unavailable', 'Service unavailable', detail),
  internal: () => new Problem(500, 'internal', 'Internal server error', 'An unexpected error occurred.'),
  /** For statuses raised by Koa or its libraries without a dedicated kind (e.g. 400 from a bad header). */
  generic: (status: number, title: string) => new Problem(status, `http-${status}`, title, `${title}.`),
};

/** Sends a problem as the response. Headers already set (Allow, Retry-After, RateLimit) are kept. */
export function sendProblem(ctx: { status: number; type: string; body: unknown; path: string }, problem: Problem): void {
  ctx.status = problem.status;
  ctx.body = {
    type: `${PROBLEM_DOCS}#${problem.kind}`,
    title: problem.title,
    status: problem.status,
    detail: problem.detail,
    instance: ctx.path,
    ...problem.extensions,
  };
  ctx.type = PROBLEM_CONTENT_TYPE;
}

interface HttpLikeError {
  status: number;
  expose?: boolean;
  type?: string;
  message: string;
}

function isHttpError(err: unknown): err is HttpLikeError {
  return err instanceof Error && typeof (err as Partial<HttpLikeError>).status === 'number';
}

/** Maps errors thrown by Koa, the body parser and the router onto problems; anything else is a 500. */
function toProblem(err: unknown, method: string): Problem {
  if (err instanceof Problem) return err;
  if (err instanceof DependencyUnavailableError) return problems.unavailable();
  if (isHttpError(err) && err.status >= 400 && err.status < 500) {
    // co-body marks JSON syntax errors only by their class and status.
    if (err.status === 400 && (err instanceof SyntaxError || err.type === 'entity.parse.failed')) return problems.malformedJson();
    if (err.type === 'entity.too.large') return problems.payloadTooLarge('16 KiB');
    if (err.status === 404) return problems.notFound();
    if (err.status === 405) return problems.methodNotAllowed(method);
    if (err.status === 415) return problems.unsupportedMediaType();
    return problems.generic(err.status, err.expose === true ? err.message : 'Bad request');
  }
  return problems.internal();
}

/**
 * Turns every failure into problem+json: thrown errors, and statuses set without a body (404 for
 * unmatched paths, 405 from the router's allowedMethods). A stack trace or SQL never leaves here.
 */
export function problemDetails(log: Logger): Middleware {
  return async function problemDetailsMiddleware(ctx, next) {
    try {
      await next();
    } catch (err) {
      const problem = toProblem(err, ctx.method);
      if (problem.status >= 500 && problem.status !== 503) requestLog(ctx, log).error({ err }, 'unhandled error');
      else if (problem.status === 503) requestLog(ctx, log).warn({ err: { message: (err as Error).message } }, 'dependency unavailable');
      sendProblem(ctx, problem);
      return;
    }
    if (ctx.body != null || ctx.status < 400) return;
    // The router answers 501 for methods it does not implement at all; for a resource that exists,
    // 405 with Allow is the accurate answer, and the API promises no 5xx for bad input. Where no
    // resource exists (an empty Allow), whatever the method, the answer is 404.
    if ((ctx.status === 501 || ctx.status === 405) && ctx.response.get('Allow') === '') {
      ctx.remove('Allow');
      sendProblem(ctx, problems.notFound());
    } else if (ctx.status === 501 || ctx.status === 405) sendProblem(ctx, problems.methodNotAllowed(ctx.method));
    else if (ctx.status === 404) sendProblem(ctx, problems.notFound());
    else sendProblem(ctx, problems.generic(ctx.status, 'Error'));
  };
}

/**
 * The outermost middleware: an error thrown above problemDetails (request id, metrics, access log,
 * CORS) would otherwise reach Koa's default handler, a plain-text 500 with no log line (app.silent).
 */
export function lastResort(log: Logger): Middleware {
  return async function lastResortMiddleware(ctx, next) {
    try {
      await next();
    } catch (err) {
      requestLog(ctx, log).error({ err }, 'unhandled error outside the problem middleware');
      sendProblem(ctx, problems.internal());
    }
  };
}
