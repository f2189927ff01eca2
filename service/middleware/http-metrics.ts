import type { Middleware } from 'koa';
import type { Metrics } from '../observability/metrics.js';
import { traceExemplar } from '../observability/tracing.js';
import { settleTiming, startTiming } from './request-timing.js';

/**
 * The golden signals at the edge: latency histogram by method, route template and status (traffic and
 * errors are its _count), requests in flight, and 400s as contract violations per route. A traced
 * request leaves its trace id on its bucket as an exemplar.
 */
export function httpMetrics(metrics: Pick<Metrics, 'httpDuration' | 'httpInFlight' | 'validationFailures'>): Middleware {
  return async function httpMetricsMiddleware(ctx, next) {
    startTiming(ctx);
    metrics.httpInFlight.inc();
    try {
      await next();
    } finally {
      metrics.httpInFlight.dec();
      const { route, ms } = settleTiming(ctx);
      const labels = { method: ctx.method, route, status_code: ctx.status };
      metrics.httpDuration.observe({ labels, value: ms / 1000, exemplarLabels: traceExemplar(ctx.state) });
      if (ctx.status === 400) metrics.validationFailures.inc({ route });
    }
  };
}
