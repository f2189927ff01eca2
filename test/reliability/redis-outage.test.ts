import { Agent } from 'node:http';
import { expect } from 'chai';
import { PrivateRedis } from '../ratelimit/support.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startServiceProcess, type ServiceProcess } from '../support/service-process.js';
import { errorCode, json, scrape, send, sleep } from './support.js';

/**
 * Redis dies under traffic and comes back, on a private redis-server: the API must not notice
 * (the in-process fallback decides, and says so in the metrics), and the shared limiter must come
 * back by itself.
 */
/** How long Redis stays down; /ready is polled meanwhile, so "degraded" must show within it. */
const DOWN_MS = 3000;
/**
 * How long the test waits for the limiter to be back on Redis after the restart: several times the reconnect
 * backoff's cap (2 s, test/ratelimit/reconnect.test.ts), so only a limiter that does not come back by itself fails.
 */
const COMEBACK_WAIT_MS = 15_000;

describe('Redis outage', function () {
  let db: TestDatabase;
  let redis: PrivateRedis;
  let service: ServiceProcess;
  before(async () => {
    db = await createTestDatabase();
    redis = await PrivateRedis.start();
    service = await startServiceProcess({ DATABASE_URL: db.url, REDIS_URL: redis.url, RATE_LIMIT_RPS: '100000', RATE_LIMIT_BURST: '10000' });
  });
  after(async () => {
    await service.stop('SIGKILL');
    await redis.stop();
    await db.drop();
  });

  const redisCheck = async () => {
    const body = json(await send(service.port, { path: '/ready' })) as { checks?: { redis?: string } };
    return body.checks?.redis;
  };

  it('keeps serving without a 5xx on the fallback limiter, counts it, and returns to Redis', async () => {
    const port = service.port;
    const deadline = performance.now() + 5000;
    while ((await redisCheck()) !== 'ok') {
      if (performance.now() > deadline) throw new Error('the limiter never reached Redis');
      await sleep(50);
    }
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const statuses: { t: number; status: number | string }[] = [];
    let stopped = false;
    const loops = Array.from({ length: 4 }, async () => {
      while (!stopped) {
        const t = performance.now();
        statuses.push({ t, status: await send(port, { path: '/api/users?limit=1', agent }).then((r) => r.status, errorCode) });
        await sleep(10);
      }
    });

    await sleep(500);
    const before = await scrape(service.metricsPort);
    const down = performance.now();
    await redis.stop();
    let degradedAt = 0;
    while (performance.now() - down < DOWN_MS) {
      if (degradedAt === 0 && (await redisCheck()) === 'degraded') degradedAt = performance.now();
      await sleep(50);
    }
    const readyDuring = await send(port, { path: '/ready' });
    const during = await scrape(service.metricsPort);
    const restart = performance.now();
    await redis.start();
    let backAt = 0;
    while (performance.now() - restart < COMEBACK_WAIT_MS) {
      if ((await redisCheck()) === 'ok') {
        backAt = performance.now();
        break;
      }
      await sleep(50);
    }
    const afterBack = await scrape(service.metricsPort);
    await sleep(1000);
    const end = await scrape(service.metricsPort);
    stopped = true;
    await Promise.all(loops);
    agent.destroy();

    const fallback = (m: typeof before) => m('ratelimit_decisions_total', { outcome: 'fallback_allowed' }) + m('ratelimit_decisions_total', { outcome: 'fallback_limited' });
    const report = {
      requests: statuses.length,
      non200: statuses.filter((s) => s.status !== 200).length,
      degradedAfterMs: degradedAt ? Math.round(degradedAt - down) : null,
      fallbackDecisions: fallback(during) - fallback(before),
      redisErrors: during('ratelimit_redis_errors_total') - before('ratelimit_redis_errors_total'),
      backOnRedisAfterMs: backAt ? Math.round(backAt - restart) : null,
      redisDecisionsAfterReturn: end('ratelimit_decisions_total', { outcome: 'allowed' }) - afterBack('ratelimit_decisions_total', { outcome: 'allowed' }),
      fallbackAfterReturn: fallback(end) - fallback(afterBack),
    };
    console.log(`      Redis outage: ${JSON.stringify(report)}`);

    expect(statuses.filter((s) => s.status !== 200), 'no 5xx, no error: every request admitted').to.deep.equal([]);
    // Ordering, not speed: reported while Redis was still down (README has the measured delay).
    expect(report.degradedAfterMs, '/ready reports redis degraded during the outage').to.be.a('number');
    expect(readyDuring.status, 'Redis down does not fail readiness').to.equal(200);
    // Counts, not rates: how many requests four loops manage depends on the machine (9 in a second on a loaded one).
    expect(report.fallbackDecisions, 'the fallback limiter decided').to.be.greaterThan(0);
    expect(report.redisErrors, 'Redis failures counted').to.be.greaterThan(0);
    expect(report.backOnRedisAfterMs, 'back on Redis by itself').to.be.a('number');
    expect(report.redisDecisionsAfterReturn, 'Redis decides again').to.be.greaterThan(0);
    expect(report.fallbackAfterReturn, 'no more fallback').to.equal(0);
  });
});
