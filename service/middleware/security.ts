import cors from '@koa/cors';
import type { Middleware } from 'koa';

/**
 * The response headers a JSON API needs, the same on every response (Node's own error answers
 * too, see server/client-errors.ts). Nothing here is ever rendered as a page:
 * - Content-Security-Policy forbids every source and any framing (frame-ancestors supersedes
 *   X-Frame-Options in every current browser);
 * - nosniff: a response is never read as anything but its Content-Type;
 * - no-referrer: no URL of this API leaks to a link target;
 * - Cross-Origin-Resource-Policy: other origins cannot embed a response (Spectre-class reads);
 * - HSTS: the API is reached over HTTPS only once a browser has seen it there (browsers ignore
 *   the header over plain HTTP, RFC 6797 §8.1; no includeSubDomains, the parent domain is not ours).
 * helmet's other seven (X-Frame-Options, X-XSS-Protection, X-DNS-Prefetch-Control,
 * X-Download-Options, X-Permitted-Cross-Domain-Policies, Origin-Agent-Cluster,
 * Cross-Origin-Opener-Policy) concern HTML documents, old Internet Explorer or Flash: about 400
 * bytes on every response that protect nothing a JSON API serves.
 */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'no-referrer'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Strict-Transport-Security', 'max-age=31536000'],
];

export function securityHeaders(): Middleware {
  return function securityHeadersMiddleware(ctx, next) {
    const res = ctx.res;
    for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
    return next();
  };
}

/** Closed unless origins are configured: browsers on other origins get no CORS grant at all. */
export function corsPolicy(allowedOrigins: string[]): Middleware | undefined {
  if (allowedOrigins.length === 0) return undefined;
  const allowed = new Set(allowedOrigins);
  return cors({
    origin: (ctx) => (allowed.has(ctx.get('Origin')) ? ctx.get('Origin') : ''),
    allowMethods: ['GET', 'POST', 'PATCH', 'DELETE'],
    exposeHeaders: ['Location', 'ETag', 'Idempotent-Replayed', 'X-Request-ID', 'RateLimit', 'RateLimit-Policy', 'Retry-After'],
    maxAge: 600,
  });
}
