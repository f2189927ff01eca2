import { expect } from 'chai';
import { Redis } from 'ioredis';
import { SHARED_REDIS_URL, startLimitedApp, uniqueKeyPrefix, waitFor, get } from './support.js';

describe('choosing and configuring the limiter', () => {
  it('runs in-process only, reported as disabled, with one warning at start when REDIS_URL is unset', async () => {
    const app = await startLimitedApp({ redisUrl: undefined, policy: { rps: 0.1, burst: 2 } });
    try {
      expect(app.limiter.health()).to.equal('disabled');
      expect(app.logs.filter((l) => l.level === 'warn')).to.have.length(1);
      const statuses = await Promise.all([1, 2, 3].map(() => get(`${app.baseUrl}/api/ping`).then((r) => r.status)));
      expect(statuses.sort()).to.deep.equal([200, 200, 429]);
      expect(await app.decisions('allowed')).to.equal(2);
      expect(await app.decisions('limited')).to.equal(1);
    } finally {
      await app.close();
    }
  });

  it('stores a bucket in Redis only until it would be full again', async () => {
    const keyPrefix = uniqueKeyPrefix();
    const app = await startLimitedApp({ redisUrl: SHARED_REDIS_URL, policy: { rps: 10, burst: 5 }, keyPrefix });
    const redis = new Redis(SHARED_REDIS_URL);
    try {
      await waitFor(() => app.limiter.health() === 'ok', 5000, 'Redis');
      await Promise.all([1, 2, 3].map(() => get(`${app.baseUrl}/api/ping`)));
      const keys = await redis.keys(`${keyPrefix}*`);
      expect(keys).to.have.length(1);
      // Three tokens taken at 10 r/s: full again within 300 ms.
      const ttl = await redis.pttl(keys[0]!);
      expect(ttl).to.be.within(1, 300);
    } finally {
      redis.disconnect();
      await app.close();
    }
  });

  it('does not throw or block start-up when Redis is unreachable, and deciding still works', async () => {
    const app = await startLimitedApp({ redisUrl: 'redis://127.0.0.1:1', policy: { rps: 5, burst: 2 } });
    try {
      expect((await get(`${app.baseUrl}/api/ping`)).status).to.equal(200);
      expect(app.limiter.health()).to.equal('degraded');
      expect(await app.decisions('fallback_allowed')).to.equal(1);
    } finally {
      await app.close();
    }
  });
});
