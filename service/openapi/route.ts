import Router from '@koa/router';
import type { OpenApiDocument } from './contract.js';

/** Serves the contract the service validates against, so clients and tools read the same document. */
export function openApiRouter(doc: OpenApiDocument): Router {
  const json = JSON.stringify(doc);
  const router = new Router({ sensitive: true, strict: true });
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = json;
  });
  return router;
}
