import { expect } from 'chai';
import { Redis } from 'ioredis';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { parseMetrics, sumOf } from '../support/prometheus.js';
import { decisions, flushRedis, get, PrivateRedis, startLimitedApp, type HttpResult } from './support.js';

/**
 * The limiter as a client of the real application sees it (createApp, as main.ts builds it), on a
 * private redis-server flushed before each test. The policy is tight and slow: a burst of 10, one
 * token a second, so eleven concurrent requests reach the bucket well within one refill however
 * loaded the machine.
 */
describe('rate limiting the real application (Redis)', () => {
  let db: TestDatabase;
  let redis: PrivateRedis;
  const apps: TestApp[] = [];

  before(async () => {
    db = await createTestDatabase();
    redis = await PrivateRedis.start();
    // One burst through a throwaway app first: in a cold process (a test run alone) the first burst's requests
    // reached the limiter over more than the 1 s refill under load, and the 11th was admitted. Warm, they land
    // together however loaded the machine. (beforeEach flushes what it stored.)
    const warm = await startLimitedApp(db.url, redis.url);
    await burst(`${warm.baseUrl}/api/users`, 11);
    await warm.close();
  });
  after(async () => {
    await redis.stop();
    await db.drop();
  });
  beforeEach(async () => { await flushRedis(redis.url); });
  afterEach(async () => { await Promise.all(apps.splice(0).map((app) => app.close())); });

  const start = async (env: Record<string, string> = {}) => {
    const app = await startLimitedApp(db.url, redis.url, env);
    apps.push(app);
    return app;
  };
  const burst = (url: string, n: number, headers: (i: number) => Record<string, string> = () => ({})) =>
    Promise.all(Array.from({ length: n }, (_, i) => get(url, headers(i))));
  const statuses = (responses: HttpResult[]) => responses.map((r) => r.status).sort();

  it('lets 10 requests at once through and answers the 11th with 429 problem+json', async () => {
    const app = await start();
    const responses = await burst(`${app.baseUrl}/api/users`, 11);
    expect(statuses(responses)).to.deep.equal([...Array<number>(10).fill(200), 429]);
    const refused = responses.find((r) => r.status === 429)!;
    expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(refused.body).to.include({ status: 429, title: 'Too many requests', instance: '/api/users' });
  });

  it('tells the refused client when to retry, in whole seconds, never 0', async () => {
    const app = await start();
    const refused = (await burst(`${app.baseUrl}/api/users`, 11)).find((r) => r.status === 429)!;
    expect(refused.headers.get('retry-after')).to.equal('1');
    expect(refused.headers.get('ratelimit')).to.equal('"default";r=0;t=1');
  });

  it('describes the policy and what remains on every limited response', async () => {
    const app = await start();
    const responses = await burst(`${app.baseUrl}/api/users`, 11);
    for (const r of responses) expect(r.headers.get('ratelimit-policy')).to.equal('"default";q=10;w=10');
    const remaining = responses
      .filter((r) => r.status === 200)
      .map((r) => Number(/^"default";r=(\d+);t=(\d+)$/.exec(r.headers.get('ratelimit') ?? '')?.[1]))
      .sort((a, b) => a - b);
    expect(remaining).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('labels a refusal with the route template in metrics and in the access log', async () => {
    const app = await start();
    await burst(`${app.baseUrl}/api/users/1`, 11);
    const samples = parseMetrics(await (await fetch(app.metricsUrl)).text());
    expect(sumOf(samples, 'http_request_duration_seconds_count', { route: '/api/users/{id}', status_code: '429' })).to.equal(1);
    expect(app.logs.filter((l) => l.msg === 'request' && l.status === 429).map((l) => l.route)).to.deep.equal(['/api/users/{id}']);
  });

  it('counts admitted and refused requests, refusals answered from memory included', async () => {
    const app = await start();
    await burst(`${app.baseUrl}/api/users`, 12);
    expect(await decisions(app, 'allowed')).to.equal(10);
    expect(await decisions(app, 'limited')).to.equal(2);
    expect(await decisions(app, 'fallback_allowed')).to.equal(0);
  });

  it('never limits the probes or the contract, even when the client has no budget left', async () => {
    const app = await start();
    await burst(`${app.baseUrl}/api/users`, 11);
    expect((await get(`${app.baseUrl}/api/users`)).status, 'budget spent').to.equal(429);
    for (const path of ['/health', '/ready', '/openapi.json']) {
      const res = await get(`${app.baseUrl}${path}`);
      expect(res.status, path).to.equal(200);
      expect(res.headers.get('ratelimit'), path).to.equal(null);
    }
  });

  it('limits every spelling of an API path, or answers 404: case, slashes, percent-encoding', async () => {
    const app = await start();
    const variants = ['/API/users/1', '/Api/Users', '/api/users/', '/api/users/1/', '/api//users/1', '//api/users', '/api/%75sers/1', '/%61pi/users', '/api/users/%31', '/API/USERS?limit=1'];
    for (const path of variants) {
      const res = await get(`${app.baseUrl}${path}`);
      const limited = res.headers.get('ratelimit') !== null;
      expect(limited || res.status === 404, `${path}: ${res.status} without a RateLimit field`).to.equal(true);
      expect([200, 404, 429], path).to.include(res.status);
      if (res.status === 200) expect(limited, `${path} served unlimited`).to.equal(true);
    }
    // The variants spent the one budget: the canonical path is refused now.
    expect((await get(`${app.baseUrl}/api/users`)).status).to.equal(429);
  });

  it('keeps one budget for a client behind the trusted proxy, whatever X-Forwarded-For it sends', async () => {
    const app = await start({ TRUST_PROXY_HOPS: '1' });
    const responses = await burst(`${app.baseUrl}/api/users`, 11, (i) => ({ 'x-forwarded-for': `10.0.0.${i}, 203.0.113.7` }));
    expect(responses.filter((r) => r.status === 429)).to.have.length(1);
  });

  it('ignores X-Forwarded-For when no proxy is trusted', async () => {
    const app = await start();
    const responses = await burst(`${app.baseUrl}/api/users`, 11, (i) => ({ 'x-forwarded-for': `198.51.100.${i}` }));
    expect(responses.filter((r) => r.status === 429)).to.have.length(1);
  });

  it('gives another client its own budget', async () => {
    const app = await start({ TRUST_PROXY_HOPS: '1' });
    await burst(`${app.baseUrl}/api/users`, 11, () => ({ 'x-forwarded-for': '203.0.113.7' }));
    expect((await get(`${app.baseUrl}/api/users`, { 'x-forwarded-for': '203.0.113.7' })).status).to.equal(429);
    expect((await get(`${app.baseUrl}/api/users`, { 'x-forwarded-for': '198.51.100.9' })).status).to.equal(200);
  });

  it('keys IPv6 clients by their /64, so rotating addresses inside it gains nothing', async () => {
    const app = await start({ TRUST_PROXY_HOPS: '1' });
    const responses = await burst(`${app.baseUrl}/api/users`, 11, (i) => ({ 'x-forwarded-for': `2001:db8:1:2:${i.toString(16)}::${i + 1}` }));
    expect(responses.filter((r) => r.status === 429)).to.have.length(1);
    expect((await get(`${app.baseUrl}/api/users`, { 'x-forwarded-for': '2001:db8:1:3::1' })).status, 'the next /64').to.equal(200);
  });

  it('shares one budget among all clients with scope global', async () => {
    const app = await start({ TRUST_PROXY_HOPS: '1', RATE_LIMIT_SCOPE: 'global' });
    const responses = await burst(`${app.baseUrl}/api/users`, 11, (i) => ({ 'x-forwarded-for': `198.51.100.${i}` }));
    expect(responses.filter((r) => r.status === 429)).to.have.length(1);
  });

  it('shares one budget per client between two replicas on one Redis', async () => {
    const [a, b] = [await start(), await start()];
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${(i % 2 === 0 ? a : b).baseUrl}/api/users`)));
    expect(results.filter((r) => r.status === 200)).to.have.length(10);
    expect((await decisions(a, 'allowed')) + (await decisions(b, 'allowed'))).to.equal(10);
  });

  it('answers a refused client from memory until its Retry-After, without asking Redis', async () => {
    const app = await start();
    await burst(`${app.baseUrl}/api/users`, 11);
    const before = await scriptCalls();
    const again = await burst(`${app.baseUrl}/api/users`, 5);
    expect(statuses(again)).to.deep.equal([429, 429, 429, 429, 429]);
    expect(await scriptCalls(), 'limiter script runs').to.equal(before);
  });

  it('stores a bucket in Redis only until it would be full again', async () => {
    const app = await start({ RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '5' });
    await burst(`${app.baseUrl}/api/users`, 3);
    const admin = new Redis(redis.url);
    try {
      const keys = await admin.keys('*');
      expect(keys).to.have.length(1);
      // Three tokens taken at 1 r/s: full again within 3 s.
      expect(await admin.pttl(keys[0]!)).to.be.within(1, 3000);
    } finally {
      admin.disconnect();
    }
  });

  const scriptCalls = async () => {
    const admin = new Redis(redis.url);
    try {
      const info = await admin.info('commandstats');
      return [...info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    } finally {
      admin.disconnect();
    }
  };

  it('admits 100 r/s (after the burst of 10) from a client offering 200 r/s for 4 s', async function () {
    this.timeout(30_000);
    const app = await start({ RATE_LIMIT_RPS: '100', RATE_LIMIT_BURST: '10' });
    const offeredPerSecond = 200;
    const total = offeredPerSecond * 4;
    const startedAt = performance.now();
    const timings: { sent: number; answered: number; status: number }[] = [];
    const pending: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      // Paced against the start time, so a late timer does not shift every later request.
      const wait = startedAt + (i * 1000) / offeredPerSecond - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const sent = performance.now();
      pending.push(get(`${app.baseUrl}/api/users/x`).then((r) => { timings.push({ sent, answered: performance.now(), status: r.status }); }));
    }
    await Promise.all(pending);
    // An invalid id: limited like any request, then refused by validation without a database query.
    expect(timings.filter((t) => t.status !== 400 && t.status !== 429), 'only 400 or 429').to.deep.equal([]);
    const admitted = timings.filter((t) => t.status === 400).length;
    // Each decision was taken between its request's sending and its answer, as seen from here: the
    // span the bucket saw lies between these two bounds.
    const sent = timings.map((t) => t.sent);
    const answered = timings.map((t) => t.answered);
    const spanMax = (Math.max(...answered) - Math.min(...sent)) / 1000;
    const spanMin = (Math.max(...sent) - Math.min(...answered)) / 1000;
    // Upper bound, exact: GCRA never admits more than burst + rps × span (+1 for either end).
    expect(admitted).to.be.at.most(10 + Math.floor(100 * spanMax) + 1);
    // Lower bound: the bucket loses tokens only while no request reaches it for longer than its
    // depth (100 ms), one per 10 ms beyond that; such stalls are counted from the observed gaps,
    // and 5 % is left for what cannot be observed from here (Redis shares the machine's cores).
    const sorted = [...sent].sort((a, b) => a - b);
    let stalls = 0;
    for (let i = 1; i < sorted.length; i++) stalls += Math.max(0, sorted[i]! - sorted[i - 1]! - 100) / 10;
    expect(admitted).to.be.at.least(Math.floor(10 + 0.95 * 100 * spanMin - stalls));
  });
});

describe('choosing the limiter', () => {
  let db: TestDatabase;
  before(async () => { db = await createTestDatabase(); });
  after(async () => { await db.drop(); });

  it('runs in-process only, reported as disabled, with one warning at start when REDIS_URL is unset', async () => {
    const app = await startTestApp(db.url, { RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '2' });
    try {
      expect(app.rateLimiter.health()).to.equal('disabled');
      expect(app.logs.filter((l) => l.level === 'warn' && /REDIS_URL is not set/.test(String(l.msg)))).to.have.length(1);
      const codes = await Promise.all([1, 2, 3].map(() => get(`${app.baseUrl}/api/users`).then((r) => r.status)));
      expect(codes.sort()).to.deep.equal([200, 200, 429]);
      expect(await decisions(app, 'allowed')).to.equal(2);
      expect(await decisions(app, 'limited')).to.equal(1);
    } finally {
      await app.close();
    }
  });

  it('does not throw or block start-up when Redis is unreachable, and deciding still works', async () => {
    const app = await startTestApp(db.url, { REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '2' });
    try {
      expect((await get(`${app.baseUrl}/api/users`)).status).to.equal(200);
      expect(app.rateLimiter.health()).to.equal('degraded');
      expect(await decisions(app, 'fallback_allowed')).to.equal(1);
    } finally {
      await app.close();
    }
  });
});
