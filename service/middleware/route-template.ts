import type { Context } from 'koa';
import type { OperationState } from './operation.js';

/** The label for requests no route matched: one value, whatever random paths clients send. */
export const UNMATCHED_ROUTE = 'unmatched';

const templates = new Map<string, string>();

/**
 * The matched route as OpenAPI writes it (`/api/users/{id}`), for metric labels and log lines.
 * Bounded by the number of routes, never by the paths clients invent.
 */
export function routeTemplate(ctx: Context): string {
  const matched = (ctx as Context & { _matchedRoute?: string | RegExp })._matchedRoute;
  // A request refused before routing (429, 401) is labelled with the operation its path names.
  if (typeof matched !== 'string') return (ctx.state as Partial<OperationState>).operation?.template ?? UNMATCHED_ROUTE;
  let template = templates.get(matched);
  if (template === undefined) {
    template = (matched.length > 1 ? matched.replace(/\/$/, '') : matched).replace(/:(\w+)/g, '{$1}');
    templates.set(matched, template);
  }
  return template;
}
