import Koa from 'koa';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { ping, type Database } from './db/database.js';
import { probesRouter } from './health/routes.js';
import { accessLog } from './middleware/access-log.js';
import { closeConnectionsWhileDraining } from './middleware/drain.js';
import { httpMetrics } from './middleware/http-metrics.js';
import { problemDetails } from './middleware/problem.js';
import { rateLimit } from './middleware/rate-limit.js';
import { requestId } from './middleware/request-id.js';
import { corsPolicy, securityHeaders } from './middleware/security.js';
import type { Metrics } from './observability/metrics.js';
import type { Tracing } from './observability/tracing.js';
import { metricsRouter } from './observability/metrics-route.js';
import { compileValidators, type OpenApiDocument } from './openapi/contract.js';
import { openApiRouter } from './openapi/route.js';
import type { RateLimiter } from './ratelimit/limiter.js';
import { KnexUsersRepository } from './users/knex-repository.js';
import { usersRouter } from './users/routes.js';

export interface AppDeps {
  config: Pick<Config, 'trustProxyHops' | 'corsOrigins' | 'rateLimit'>;
  log: Logger;
  metrics: Metrics;
  database: Database;
  rateLimiter: RateLimiter;
  openapi: OpenApiDocument;
  tracing: Tracing;
  /** True once shutdown has begun: readiness fails and responses ask clients to reconnect elsewhere. */
  isDraining: () => boolean;
}

/** Readiness must answer within a second, whatever the pool is doing. */
const READY_PING_TIMEOUT_MS = 900;

/**
 * Builds the HTTP application from its dependencies. The middleware order below is the request
 * path, outermost first; it lives here and nowhere else.
 */
export function createApp(deps: AppDeps): Koa {
  const { config, log, metrics, database, rateLimiter, openapi, tracing, isDraining } = deps;
  const app = new Koa();
  // Trust exactly as many X-Forwarded-For hops as there are proxies we run; a client's own header
  // beyond that is ignored, so it cannot choose its rate-limit bucket.
  app.proxy = config.trustProxyHops > 0;
  app.maxIpsCount = config.trustProxyHops;
  // Errors are logged by problemDetails with the request id; Koa's default handler would print stacks.
  app.silent = true;

  const probes = probesRouter({
    pingDatabase: () => ping(database.knex, READY_PING_TIMEOUT_MS),
    limiterHealth: () => rateLimiter.health(),
    isDraining,
  });
  const users = usersRouter({
    repository: new KnexUsersRepository(database.knex, metrics.dbQueryDuration, tracing),
    validators: compileValidators(openapi),
    usersCreated: metrics.usersCreated,
    usersCreateConflicts: metrics.usersCreateConflicts,
  });
  const cors = corsPolicy(config.corsOrigins);

  const serverSpan = tracing.serverSpan();
  if (serverSpan) app.use(serverSpan);
  app.use(requestId(log));
  app.use(httpMetrics(metrics));
  app.use(accessLog(log));
  app.use(closeConnectionsWhileDraining(isDraining));
  app.use(securityHeaders());
  if (cors) app.use(cors);
  app.use(problemDetails(log));
  // Probes, scrapes and the contract come before the limiter: they are never refused.
  for (const router of [probes, metricsRouter(metrics.registry), openApiRouter(openapi)]) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  app.use(rateLimit({ limiter: rateLimiter, scope: config.rateLimit.scope }));
  app.use(users.routes());
  app.use(users.allowedMethods());
  return app;
}
