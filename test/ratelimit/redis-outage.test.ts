import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { decisions, get, PrivateRedis, redisErrors, sleep, startLimitedApp, waitFor } from './support.js';

/**
 * Redis failing under traffic, on a private redis-server this suite may kill and restart.
 * Policy high enough that every request is admitted: any non-200 would be the outage leaking.
 */
describe('rate limiting while Redis fails', () => {
  let db: TestDatabase;
  let redis: PrivateRedis;
  let app: TestApp;

  before(async () => { db = await createTestDatabase(); });
  after(async () => { await db.drop(); });
  beforeEach(async () => {
    redis = await PrivateRedis.start();
    app = await startLimitedApp(db.url, redis.url, { RATE_LIMIT_RPS: '100000', RATE_LIMIT_BURST: '1000', RATE_LIMIT_REDIS_TIMEOUT: '50ms' });
  });
  afterEach(async () => {
    await app.close();
    await redis.stop();
  });

  /** Steady traffic (one request every 5 ms) until stopped; returns every status seen. */
  function traffic() {
    const statuses: number[] = [];
    const state = { running: true };
    const done = (async () => {
      while (state.running) {
        statuses.push(await get(`${app.baseUrl}/api/users?limit=1`).then((r) => r.status, () => -1));
        await sleep(5);
      }
    })();
    return { statuses, stop: async () => { state.running = false; await done; return statuses; } };
  }

  const warnings = (pattern: RegExp) => app.logs.filter((l) => l.level === 'warn' && pattern.test(String(l.msg)));
  const infos = (pattern: RegExp) => app.logs.filter((l) => l.level === 'info' && pattern.test(String(l.msg)));

  it('keeps answering 200 when Redis dies mid-traffic, deciding in-process', async () => {
    const load = traffic();
    await sleep(300);
    await redis.stop();
    await sleep(1000);
    const statuses = await load.stop();
    expect(statuses.filter((s) => s !== 200), 'no 5xx, no failed request').to.deep.equal([]);
    expect(app.rateLimiter.health()).to.equal('degraded');
    expect(await decisions(app, 'fallback_allowed')).to.be.greaterThan(0);
  });

  it('counts the failed Redis calls and logs the outage once, not per request', async () => {
    const load = traffic();
    await sleep(200);
    await redis.stop();
    await sleep(1200);
    await load.stop();
    // While down, one probe per 500 ms tries Redis and fails.
    expect(await redisErrors(app)).to.be.at.least(1);
    expect(warnings(/Redis unavailable/)).to.have.length(1);
  });

  it('goes back to Redis by itself when Redis returns', async () => {
    const load = traffic();
    await redis.stop();
    await waitFor(() => app.rateLimiter.health() === 'degraded', 2000, 'the outage to be noticed');
    await sleep(300);
    await redis.start();
    await waitFor(() => app.rateLimiter.health() === 'ok', 5000, 'the limiter to reconnect');
    const allowedBefore = await decisions(app, 'allowed');
    const fallbackBefore = await decisions(app, 'fallback_allowed');
    await sleep(300);
    const statuses = await load.stop();
    expect(await decisions(app, 'allowed'), 'Redis decides again').to.be.greaterThan(allowedBefore);
    expect(await decisions(app, 'fallback_allowed'), 'no more fallback').to.equal(fallbackBefore);
    expect(statuses.filter((s) => s !== 200)).to.deep.equal([]);
    expect(infos(/Redis is back/)).to.have.length(1);
  });

  it('falls back within the timeout when Redis is up but does not answer', async () => {
    const admin = new Redis(redis.url);
    // Redis holds every script (the limiter's EVALSHA) for 10 s while its connections stay open: an answer
    // that comes sooner did not wait for Redis. (WRITE, not ALL, so this client can still UNPAUSE it.)
    const pauseMs = 10_000;
    try {
      await admin.client('PAUSE', pauseMs, 'WRITE');
      const started = performance.now();
      const res = await get(`${app.baseUrl}/api/users?limit=1`);
      const elapsed = performance.now() - started;
      expect(res.status).to.equal(200);
      // The 50 ms budget plus HTTP on localhost; a quarter of the pause leaves a loaded machine room.
      expect(elapsed, 'ms until the answer').to.be.below(pauseMs / 4);
      expect(await decisions(app, 'fallback_allowed')).to.equal(1);
      expect(await redisErrors(app)).to.equal(1);
      // The next requests do not wait for Redis again: at most one probe per 500 ms interval tries it, so
      // however slowly this machine sends them, the failed attempts are bounded by the intervals elapsed.
      for (let i = 0; i < 20; i++) expect((await get(`${app.baseUrl}/api/users?limit=1`)).status).to.equal(200);
      const intervals = Math.floor((performance.now() - started) / 500);
      expect(await decisions(app, 'fallback_allowed')).to.equal(21);
      expect(await redisErrors(app), 'Redis attempts for 21 requests').to.be.at.most(1 + intervals).and.below(21);
    } finally {
      await admin.client('UNPAUSE').catch(() => undefined);
      admin.disconnect();
    }
  });

  it('decides within one Redis timeout even when queued behind a pipeline that is timing out', async function () {
    // A slower timeout than the suite's, so the difference between one and two timeouts is wide.
    const timeoutMs = 5000;
    this.timeout(60_000);
    const slow = await startLimitedApp(db.url, redis.url, { RATE_LIMIT_RPS: '100000', RATE_LIMIT_BURST: '1000', RATE_LIMIT_REDIS_TIMEOUT: `${timeoutMs}ms` });
    const admin = new Redis(redis.url);
    try {
      await admin.client('PAUSE', 4 * timeoutMs, 'WRITE');
      const first = get(`${slow.baseUrl}/api/users/x`);
      // The first request's pipeline is in flight; the second's command is queued behind it.
      await sleep(300);
      const started = performance.now();
      const second = await get(`${slow.baseUrl}/api/users/x`);
      const elapsed = performance.now() - started;
      expect((await first).status).to.equal(400);
      expect(second.status).to.equal(400);
      // One timeout is 5 s; queued behind the first pipeline, ioredis alone would take its remaining
      // ~4.7 s plus a full 5 s of its own. One and a half timeouts separates the two with 2.5 s of room
      // on either side (a run with four jobs on two cores took 1.5 s over one timeout).
      expect(elapsed, 'ms until the second request was decided').to.be.below(timeoutMs * 1.5);
    } finally {
      await admin.client('UNPAUSE').catch(() => undefined);
      admin.disconnect();
      await slow.close();
    }
  });
});
