import type { Middleware } from 'koa';
import type { MatchedOperation } from '../openapi/operations.js';

export interface OperationState {
  /** The contract operation this request names, by the one path rule; undefined for any other path. */
  operation?: MatchedOperation;
}

/** Resolves the request to its OpenAPI operation once, for authentication, the limiter and the route label. */
export function matchOperation(match: (method: string, path: string) => MatchedOperation | undefined): Middleware<OperationState> {
  return function matchOperationMiddleware(ctx, next) {
    ctx.state.operation = match(ctx.method, ctx.path);
    return next();
  };
}
