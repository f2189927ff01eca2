import cors from '@koa/cors';
import type { Middleware } from 'koa';
import helmet from 'koa-helmet';

/**
 * Headers for a JSON API: nothing here is ever rendered as a page, so the policy forbids every
 * source and framing. HSTS is left to the TLS-terminating ingress, which owns the host name.
 */
const HELMET_OPTIONS: Parameters<typeof helmet>[0] = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  strictTransportSecurity: false,
  crossOriginResourcePolicy: { policy: 'same-origin' },
  referrerPolicy: { policy: 'no-referrer' },
};

interface HeaderEdits {
  set: [string, string | number | readonly string[]][];
  removed: string[];
}

/**
 * What helmet does to a response under HELMET_OPTIONS, recorded once. The policy above has no
 * per-request part (no nonce, no directive computed from the request), so every response gets the
 * same headers; replaying them saves helmet's per-request work and its promise (see bench/).
 */
function recordHelmet(): HeaderEdits {
  const edits: HeaderEdits = { set: [], removed: [] };
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) { edits.set.push([name, value]); },
    removeHeader(name: string) { edits.removed.push(name); },
    getHeader: () => undefined,
  };
  void helmet(HELMET_OPTIONS)({ req: {}, res } as unknown as Parameters<Middleware>[0], () => Promise.resolve());
  if (edits.set.length === 0) throw new Error('helmet set no headers: has koa-helmet changed how it applies them?');
  return edits;
}

/** The recorded headers; server.ts also writes them on the few responses Node answers before Koa. */
export const SECURITY_HEADERS: HeaderEdits = recordHelmet();

export function securityHeaders(): Middleware {
  const { set, removed } = SECURITY_HEADERS;
  return function securityHeadersMiddleware(ctx, next) {
    const res = ctx.res;
    for (const name of removed) res.removeHeader(name);
    for (const [name, value] of set) res.setHeader(name, value);
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
