import { expect } from 'chai';
import { Redis } from 'ioredis';
import { get, PrivateRedis, sleep, startLimitedApp, waitFor, type LimitedApp } from './support.js';

/**
 * Redis failing under traffic, on a private redis-server this suite may kill and restart.
 * Policy high enough that every request is admitted: any non-200 would be the outage leaking.
 */
describe('rate limiting while Redis fails', () => {
  let redis: PrivateRedis;
  let app: LimitedApp;

  beforeEach(async () => {
    redis = await PrivateRedis.start();
    app = await startLimitedApp({ redisUrl: redis.url, policy: { rps: 100_000, burst: 1000 }, redisTimeoutMs: 50 });
    await waitFor(() => app.limiter.health() === 'ok', 5000, 'the limiter to reach Redis');
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
        statuses.push(await get(`${app.baseUrl}/api/ping`).then((r) => r.status, () => -1));
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
    expect(app.limiter.health()).to.equal('degraded');
    expect(await app.decisions('fallback_allowed')).to.be.greaterThan(0);
  });

  it('counts the failed Redis calls and logs the outage once, not per request', async () => {
    const load = traffic();
    await sleep(200);
    await redis.stop();
    await sleep(1200);
    await load.stop();
    // While down, one probe per 500 ms tries Redis and fails.
    expect(await app.redisErrors()).to.be.at.least(1);
    expect(warnings(/Redis unavailable/)).to.have.length(1);
  });

  it('goes back to Redis by itself when Redis returns', async () => {
    const load = traffic();
    await redis.stop();
    await waitFor(() => app.limiter.health() === 'degraded', 2000, 'the outage to be noticed');
    await sleep(300);
    await redis.start();
    await waitFor(() => app.limiter.health() === 'ok', 5000, 'the limiter to reconnect');
    const allowedBefore = await app.decisions('allowed');
    const fallbackBefore = await app.decisions('fallback_allowed');
    await sleep(300);
    const statuses = await load.stop();
    expect(await app.decisions('allowed'), 'Redis decides again').to.be.greaterThan(allowedBefore);
    expect(await app.decisions('fallback_allowed'), 'no more fallback').to.equal(fallbackBefore);
    expect(statuses.filter((s) => s !== 200)).to.deep.equal([]);
    expect(infos(/Redis is back/)).to.have.length(1);
  });

  it('falls back within the timeout when Redis is up but does not answer', async () => {
    const admin = new Redis(redis.url);
    const pauseMs = 10_000;
    try {
      // Redis stops serving every client while its connections stay open.
      await admin.client('PAUSE', pauseMs, 'ALL');
      const started = performance.now();
      const res = await get(`${app.baseUrl}/api/ping`);
      expect(res.status).to.equal(200);
      // Ordering, not speed: answered before Redis would have (the pause outlasts any loaded machine's
      // handling of one request; the 50 ms budget is what makes it short, not this bound).
      expect(performance.now() - started, 'answered while Redis is still paused').to.be.below(pauseMs);
      expect(await app.decisions('fallback_allowed')).to.equal(1);
      expect(await app.redisErrors()).to.equal(1);
    } finally {
      admin.disconnect();
    }
  });

  it('after a Redis timeout, decides the next requests in-process without waiting for Redis each time', async () => {
    const admin = new Redis(redis.url);
    try {
      await admin.client('PAUSE', 10_000, 'ALL');
      const started = performance.now();
      await get(`${app.baseUrl}/api/ping`);
      const replies = await Promise.all(Array.from({ length: 20 }, () => get(`${app.baseUrl}/api/ping`)));
      const spanMs = performance.now() - started;
      expect(replies.map((r) => r.status)).to.deep.equal(replies.map(() => 200));
      expect(await app.decisions('fallback_allowed')).to.equal(21);
      // While down, one probe per 500 ms may try Redis: the bound follows the time taken, so load
      // cannot break it, and a limiter trying Redis for every request (21 errors) still fails it.
      expect(await app.redisErrors(), `Redis tried at most once per probe interval over ${Math.round(spanMs)} ms`).to.be.at.most(1 + Math.floor(spanMs / 500));
    } finally {
      admin.disconnect();
    }
  });
});
