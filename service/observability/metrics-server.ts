import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { metricsRenderer } from './exemplars.js';

/**
 * GET /metrics on its own port (METRICS_PORT), for the ServiceMonitor only: the application port,
 * which the ingress and clients reach, never serves it. Nothing else is answered here.
 */
export async function listenMetrics(registry: Registry, port: number): Promise<Server> {
  // OpenMetrics (with exemplars) when the scrape asks for it, Prometheus text otherwise.
  const render = metricsRenderer(registry);
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: this port serves GET /metrics only.\n');
      return;
    }
    render(req.headers.accept ?? '').then(
      ({ contentType, body }) => { res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body); },
      () => { res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Collecting metrics failed.\n'); },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function closeMetrics(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => { resolve(); }));
}
