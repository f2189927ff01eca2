import Router from '@koa/router';
import type { LimiterHealth } from '../ratelimit/limiter.js';
import { Problem, sendProblem } from '../middleware/problem.js';

export interface ProbeDeps {
  /** Resolves when the database answers; must settle within about a second. */
  pingDatabase: () => Promise<void>;
  limiterHealth: () => LimiterHealth;
  isDraining: () => boolean;
}

type CheckResult = 'ok' | 'failed' | 'degraded' | 'draining' | 'disabled';

/**
 * /health is liveness: it checks nothing, so a database blip never restarts pods.
 * /ready is readiness: it fails while draining or when PostgreSQL does not answer; Redis down only
 * degrades it, because the in-process fallback keeps rate limiting correct.
 */
export function probesRouter({ pingDatabase, limiterHealth, isDraining }: ProbeDeps): Router {
  const router = new Router({ sensitive: true, strict: true });

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/ready', async (ctx) => {
    const checks: Record<string, CheckResult> = {};
    if (isDraining()) checks.shutdown = 'draining';
    checks.database = await pingDatabase().then(
      () => 'ok' as const,
      () => 'failed' as const,
    );
    checks.redis = limiterHealth();
    const failed = Object.entries(checks).filter(([, result]) => result === 'failed' || result === 'draining');
    if (failed.length === 0) {
      ctx.body = { status: 'ready', checks };
      return;
    }
    const detail = `Failed checks: ${failed.map(([name, result]) => `${name} (${result})`).join(', ')}.`;
    sendProblem(ctx, new Problem(503, 'not-ready', 'Not ready', detail, { checks }));
  });

  return router;
}
