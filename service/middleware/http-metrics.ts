import type { Middleware } from 'koa';
import type { Metrics } from '../observability/metrics.js';
import { routeTemplate } from './route-template.js';

/**
 * The golden signals at the edge: latency histogram by method, route template and status (traffic and
 * errors are its _count), requests in flight, and 400s as contract violations per route.
 */
export function httpMetrics(metrics: Pick<Metrics, 'httpDuration' | 'httpInFlight' | 'validationFailures'>): Middleware {
  return async function httpMetricsMiddleware(ctx, next) {
    const start = process.hrtime.bigint();
    metrics.httpInFlight.inc();
    try {
      await next();
    } finally {
      metrics.httpInFlight.dec();
      const route = routeTemplate(ctx);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.httpDuration.observe({ method: ctx.method, route, status_code: ctx.status }, seconds);
      if (ctx.status === 400) metrics.validationFailures.inc({ route });
    }
  };
}
