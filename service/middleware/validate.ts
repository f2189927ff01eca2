import type { Middleware } from 'koa';
import type { OperationValidators } from '../openapi/contract.js';
import { problems } from './problem.js';

/** What a validated handler reads instead of the raw request. */
export interface ValidatedInput {
  params: Record<string, unknown>;
  /** The documented header parameters that were sent, under their documented names. */
  headers: Record<string, unknown>;
  body: unknown;
}

/**
 * Checks a request against its OpenAPI operation before the handler runs. Every field error is
 * reported at once, so a client fixes its request in one round trip.
 */
export function validate(validators: OperationValidators | undefined): Middleware<{ input: ValidatedInput }> {
  if (!validators) throw new Error('no validators for this operation: is its operationId in openapi.yaml?');
  return async function validateMiddleware(ctx, next) {
    const params = validators.params({ ...ctx.query, ...(ctx as unknown as { params: Record<string, string> }).params });
    const headers = validators.headers(ctx.headers);
    const body = validators.body?.(ctx.request.body);
    const errors = [...(params.ok ? [] : params.errors), ...(headers.ok ? [] : headers.errors), ...(body && !body.ok ? body.errors : [])];
    if (errors.length > 0 || !params.ok || !headers.ok) throw problems.validation(errors);
    ctx.state.input = { params: params.value, headers: headers.value, body: body?.ok ? body.value : undefined };
    await next();
  };
}
