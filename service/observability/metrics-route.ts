import Router from '@koa/router';
import type { Registry } from 'prom-client';

/** GET /metrics on the service port, for the ServiceMonitor; the chart keeps it off the public ingress. */
export function metricsRouter(registry: Registry): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  return router;
}
