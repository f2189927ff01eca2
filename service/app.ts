import Koa from 'koa';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { TokenVerifier } from './auth/token-verifier.js';
import type { Database } from './db/database.js';
import { probesRouter } from './health/routes.js';
import { accessLog } from './middleware/access-log.js';
import { authenticate } from './middleware/authenticate.js';
import { authorize } from './middleware/authorize.js';
import { closeConnectionsWhileDraining } from './middleware/drain.js';
import { httpMetrics } from './middleware/http-metrics.js';
import { matchOperation } from './middleware/operation.js';
import { privateResponses } from './middleware/private-responses.js';
import { lastResort, problemDetails } from './middleware/problem.js';
import { rateLimit } from './middleware/rate-limit.js';
import { requestId } from './middleware/request-id.js';
import { corsPolicy, securityHeaders } from './middleware/security.js';
import type { Metrics } from './observability/metrics.js';
import type { Tracing } from './observability/tracing.js';
import { compileValidators, type OpenApiDocument } from './openapi/contract.js';
import { operationMatcher } from './openapi/operations.js';
import { openApiRouter } from './openapi/route.js';
import type { RateLimiter } from './ratelimit/limiter.js';
import { RefusalMemory } from './ratelimit/refusals.js';
import { KnexUsersRepository } from './users/knex-repository.js';
import { usersRouter } from './users/routes.js';
import { UsersService } from './users/users-service.js';

export interface AppDeps {
  config: Pick<Config, 'trustProxyHops' | 'corsOrigins' | 'rateLimit' | 'idempotency'>;
  log: Logger;
  metrics: Metrics;
  database: Database;
  rateLimiter: RateLimiter;
  openapi: OpenApiDocument;
  /** Verifies bearer tokens; undefined when authentication is off. */
  tokenVerifier: TokenVerifier | undefined;
  tracing: Tracing;
  /** True once shutdown has begun: readiness fails and responses ask clients to reconnect elsewhere. */
  isDraining: () => boolean;
}

/**
 * Builds the HTTP application from its dependencies. The middleware order below is the request
 * path, outermost first; it lives here and nowhere else.
 */
export function createApp(deps: AppDeps): Koa {
  const { config, log, metrics, database, rateLimiter, openapi, tokenVerifier, tracing, isDraining } = deps;
  const app = new Koa();
  // Trust exactly as many X-Forwarded-For hops as there are proxies we run; a client's own header
  // beyond that is ignored, so it cannot choose its rate-limit bucket.
  app.proxy = config.trustProxyHops > 0;
  app.maxIpsCount = config.trustProxyHops;
  // Errors are logged by problemDetails with the request id; Koa's default handler would print stacks.
  app.silent = true;

  const probes = probesRouter({
    pingDatabase: () => database.ping(),
    limiterHealth: () => rateLimiter.health(),
    isDraining,
  });
  const users = usersRouter({
    users: new UsersService(new KnexUsersRepository(database.knex, metrics.dbQueryDuration, tracing), {
      idempotencyKeyTtlMs: config.idempotency.keyTtlMs,
    }),
    validators: compileValidators(openapi),
    metrics,
  });
  const cors = corsPolicy(config.corsOrigins);
  const refusals = new RefusalMemory();

  // The server span is outermost, so it sees the status every other layer settled on.
  const serverSpan = tracing.serverSpan();
  if (serverSpan) app.use(serverSpan);
  app.use(lastResort(log));
  app.use(requestId(log));
  app.use(httpMetrics(metrics));
  app.use(accessLog(log));
  app.use(closeConnectionsWhileDraining(isDraining));
  app.use(securityHeaders());
  if (cors) app.use(cors);
  app.use(problemDetails(log));
  // Probes and the contract come before the limiter: they are never refused. Metrics have their own port.
  for (const router of [probes, openApiRouter(openapi)]) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  // Everything else is limited, whatever its path. Authentication runs first because it picks the
  // bucket (client or address); its verdict is given after the limiter, so failures spend budget too.
  app.use(matchOperation(operationMatcher(openapi)));
  app.use(privateResponses(tokenVerifier !== undefined));
  if (tokenVerifier) app.use(authenticate(tokenVerifier, refusals));
  const limitedFromMemory = metrics.rateLimitDecisions.labels('limited');
  app.use(rateLimit({ limiter: rateLimiter, scope: config.rateLimit.scope, refusals, onRecalledRefusal: () => { limitedFromMemory.inc(); } }));
  if (tokenVerifier) app.use(authorize(metrics.authOutcomes));
  app.use(users.routes());
  app.use(users.allowedMethods());
  return app;
}
