import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { metricsRenderer } from './exemplars.js';

/** GET /metrics on the service port, for the ServiceMonitor; the chart keeps it off the public ingress. */
export function metricsRouter(registry: Registry): Router {
  const router = new Router();
  const render = metricsRenderer(registry);
  router.get('/metrics', async (ctx) => {
    const { contentType, body } = await render(ctx.get('Accept'));
    ctx.type = contentType;
    ctx.body = body;
  });
  return router;
}
