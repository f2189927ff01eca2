import { expect } from 'chai';
import { get, SHARED_REDIS_URL, startLimitedApp, uniqueKeyPrefix, type LimitedApp } from './support.js';

/**
 * The limiter as a client sees it, over HTTP, on the shared Redis. The burst tests refill slowly
 * (0.1 r/s: a token every 10 s) so that a burst of a dozen requests reaches the bucket within one
 * refill, however loaded the machine; the sustained tests run the production policy, 100 r/s burst
 * 10, and claim only what load cannot break: an upper bound, and admission of a paced client.
 */
describe('rate limiting over HTTP (Redis)', () => {
  const apps: LimitedApp[] = [];
  const start = async (options: Partial<Parameters<typeof startLimitedApp>[0]> = {}) => {
    const app = await startLimitedApp({ redisUrl: SHARED_REDIS_URL, policy: { rps: 0.1, burst: 10 }, ...options });
    apps.push(app);
    const deadline = Date.now() + 5000;
    while (app.limiter.health() !== 'ok' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(app.limiter.health(), 'connected to Redis').to.equal('ok');
    return app;
  };
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  const burst = (url: string, n: number, headers: (i: number) => Record<string, string> = () => ({})) =>
    Promise.all(Array.from({ length: n }, (_, i) => get(url, headers(i))));

  it('lets 10 requests at once through and answers the 11th with 429 problem+json', async () => {
    const app = await start();
    const responses = await burst(`${app.baseUrl}/api/ping`, 11);
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).to.deep.equal([...Array<number>(10).fill(200), 429]);
    const refused = responses.find((r) => r.status === 429)!;
    expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(refused.body).to.include({ status: 429, title: 'Too many requests', instance: '/api/ping' });
  });

  it('tells the refused client when to retry, in whole seconds, never 0', async () => {
    // One token every 200 ms and no burst: of three requests at once, one is refused (however loaded
    // the machine, a refused request's wait is at most 200 ms), and up to 200 ms rounds up to 1 s.
    const app = await start({ policy: { rps: 5, burst: 1 } });
    let refused: Awaited<ReturnType<typeof get>> | undefined;
    for (let attempt = 0; attempt < 20 && !refused; attempt++) {
      refused = (await burst(`${app.baseUrl}/api/ping`, 3)).find((r) => r.status === 429);
    }
    expect(refused, 'a 429 among 20 bursts of 3 at 5 r/s, burst 1').to.not.equal(undefined);
    expect(refused!.headers.get('retry-after')).to.equal('1');
    expect(refused!.headers.get('ratelimit')).to.equal('"default";r=0;t=1');
  });

  it('describes the policy and what remains on every limited response', async () => {
    const app = await start();
    const responses = await burst(`${app.baseUrl}/api/ping`, 11);
    for (const r of responses) expect(r.headers.get('ratelimit-policy')).to.equal('"default";q=10;w=100');
    const remaining = responses
      .filter((r) => r.status === 200)
      .map((r) => /^"default";r=(\d+);t=(\d+)$/.exec(r.headers.get('ratelimit') ?? '')?.[1])
      .map(Number)
      .sort((a, b) => a - b);
    expect(remaining).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('counts admitted and refused requests', async () => {
    const app = await start();
    await burst(`${app.baseUrl}/api/ping`, 12);
    expect(await app.decisions('allowed')).to.equal(10);
    expect(await app.decisions('limited')).to.equal(2);
    expect(await app.decisions('fallback_allowed')).to.equal(0);
  });

  it('never limits probes, scrapes or the contract, even when the client has no budget left', async () => {
    // A token every 10 s: the spent budget cannot refill while the probes are checked, however slow the machine.
    const app = await start({ policy: { rps: 0.1, burst: 10 } });
    await burst(`${app.baseUrl}/api/ping`, 11);
    expect((await get(`${app.baseUrl}/api/ping`)).status, 'budget spent').to.equal(429);
    for (const path of ['/health', '/ready', '/metrics', '/openapi.json', '/apidocs']) {
      const res = await get(`${app.baseUrl}${path}`);
      expect(res.status, path).to.equal(200);
      expect(res.headers.get('ratelimit'), path).to.equal(null);
    }
  });

  it('limits /api itself and every path below it', async () => {
    const app = await start({ policy: { rps: 0.1, burst: 1 } });
    expect((await get(`${app.baseUrl}/api`)).status).to.equal(200);
    expect((await get(`${app.baseUrl}/api/users/123`)).status).to.equal(429);
  });

  it('keeps one budget for a client behind the trusted proxy, whatever X-Forwarded-For it sends', async () => {
    const app = await start({ trustProxyHops: 1 });
    // The client forges the first entries; our one proxy appends the address it really saw.
    const responses = await burst(`${app.baseUrl}/api/ping`, 11, (i) => ({ 'x-forwarded-for': `10.0.0.${i}, 203.0.113.7` }));
    expect(responses.filter((r) => r.status === 429)).to.have.length(1);
  });

  it('gives another client its own budget', async () => {
    const app = await start({ trustProxyHops: 1 });
    await burst(`${app.baseUrl}/api/ping`, 11, () => ({ 'x-forwarded-for': '203.0.113.7' }));
    expect((await get(`${app.baseUrl}/api/ping`, { 'x-forwarded-for': '203.0.113.7' })).status).to.equal(429);
    expect((await get(`${app.baseUrl}/api/ping`, { 'x-forwarded-for': '198.51.100.9' })).status).to.equal(200);
  });

  it('shares one budget among all clients with scope global', async () => {
    const app = await start({ trustProxyHops: 1, scope: 'global' });
    const responses = await burst(`${app.baseUrl}/api/ping`, 11, (i) => ({ 'x-forwarded-for': `198.51.100.${i}` }));
    expect(responses.filter((r) => r.status === 429)).to.have.length(1);
  });

  it('shares one budget per client between two app instances on one Redis', async () => {
    const keyPrefix = uniqueKeyPrefix();
    const [a, b] = [await start({ keyPrefix }), await start({ keyPrefix })];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => get(`${(i % 2 === 0 ? a : b).baseUrl}/api/ping`)),
    );
    expect(results.filter((r) => r.status === 200)).to.have.length(10);
    expect((await a.decisions('allowed')) + (await b.decisions('allowed'))).to.equal(10);
    expect(await a.decisions('limited')).to.be.greaterThan(0);
    expect(await b.decisions('limited')).to.be.greaterThan(0);
  });

  it('admits no more than the burst of 10 plus 100 r/s from a client offering 200 r/s for 4 s', async function () {
    this.timeout(30_000);
    const app = await start({ policy: { rps: 100, burst: 10 } });
    const offeredPerSecond = 200;
    const durationMs = 4000;
    const total = (offeredPerSecond * durationMs) / 1000;
    const startedAt = performance.now();
    const pending: Promise<number>[] = [];
    for (let i = 0; i < total; i++) {
      // Paced against the start time, so a late timer does not shift every later request.
      const wait = startedAt + (i * 1000) / offeredPerSecond - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(get(`${app.baseUrl}/api/ping`).then((r) => r.status));
    }
    const statuses = await Promise.all(pending);
    expect(statuses.filter((s) => s !== 200 && s !== 429), 'only 200 or 429').to.deep.equal([]);
    const admitted = statuses.filter((s) => s === 200).length;
    // The decisions were taken (on Redis' clock) between the first and the last request's passage
    // through the app: that bounds the span the bucket saw from above and from below.
    const starts = app.timings.map((t) => t.start);
    const ends = app.timings.map((t) => t.end);
    const spanMax = (Math.max(...ends) - Math.min(...starts)) / 1000;
    const spanMin = (Math.max(...starts) - Math.min(...ends)) / 1000;
    console.log(`      sustained: offered ${total} over ${spanMin.toFixed(3)}–${spanMax.toFixed(3)} s, admitted ${admitted} → ${((admitted - 10) / spanMax).toFixed(1)}–${((admitted - 10) / spanMin).toFixed(1)} r/s after the burst of 10`);
    // Exact, whatever the load: GCRA never admits more than burst + rps × span (+1 for the instant
    // at either end of the span).
    expect(admitted).to.be.at.most(10 + Math.floor(100 * spanMax) + 1);
  });

  it('after the burst, admits every request of a client that waits one interval (100 ms at 10 r/s) after each answer', async () => {
    const app = await start({ policy: { rps: 10, burst: 5 } });
    await burst(`${app.baseUrl}/api/ping`, 7);
    // Each request leaves one interval after the previous answer, so after the previous decision:
    // on Redis' clock too, a token has come back. A slower machine only waits longer. (A long
    // interval keeps the round trip small beside it: a refill at half the rate fails this under load average 35.)
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 101));
      statuses.push((await get(`${app.baseUrl}/api/ping`)).status);
    }
    expect(statuses).to.deep.equal(statuses.map(() => 200));
  });
});
