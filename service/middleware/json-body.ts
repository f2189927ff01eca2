import { bodyParser } from '@koa/bodyparser';
import type { Middleware } from 'koa';
import { problems } from './problem.js';

/** Documented in openapi.yaml; large enough for any valid user, small enough to refuse abuse early. */
export const BODY_LIMIT = '16kb';

/**
 * JSON bodies of one media type only (`application/json` unless told otherwise), at most BODY_LIMIT.
 * raw-body refuses a too-large Content-Length before reading and stops reading a chunked body at
 * the limit, so an oversized body is never buffered whole.
 */
export function jsonBody(mediaType = 'application/json'): Middleware {
  const parse = bodyParser({
    enableTypes: ['json'],
    extendTypes: { json: [mediaType] },
    jsonLimit: BODY_LIMIT,
    jsonStrict: true,
    encoding: 'utf-8',
  });
  return async function jsonBodyMiddleware(ctx, next) {
    if (!ctx.request.is(mediaType)) throw problems.unsupportedMediaType(mediaType);
    await parse(ctx, next);
  };
}
