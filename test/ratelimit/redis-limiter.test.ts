import { expect } from 'chai';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createMetrics } from '../../service/observability/metrics.js';
import { createRateLimiter, limiterRedisOptions } from '../../service/ratelimit/create-rate-limiter.js';
import type { RateLimitDecision } from '../../service/ratelimit/limiter.js';
import { RedisLimiter } from '../../service/ratelimit/redis-limiter.js';
import { PrivateRedis, sleep, waitFor } from './support.js';

/**
 * The Redis limiter on its own, on a private redis-server: the decisions of one event-loop turn go
 * to Redis as one script call, and each still sees the bucket as the ones before it left it.
 */
describe('Redis limiter batching', () => {
  let server: PrivateRedis;
  let redis: Redis;

  before(async () => {
    server = await PrivateRedis.start();
    redis = new Redis(server.url, limiterRedisOptions(1000));
    await redis.connect();
  });
  after(async () => {
    redis.disconnect();
    await server.stop();
  });

  let prefix = 0;
  const limiter = (options: { maxBatch?: number } = {}) =>
    new RedisLimiter({ redis, policy: { rps: 1, burst: 10 }, timeoutMs: 1000, keyPrefix: `t${String(++prefix)}:`, ...options });

  /** Script calls Redis has run so far (the first on a connection is an EVAL, then EVALSHA). */
  async function scriptCalls(): Promise<number> {
    const admin = new Redis(server.url);
    try {
      const stats = await admin.info('commandstats');
      return [...stats.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    } finally {
      admin.disconnect();
    }
  }

  const admitted = (decisions: RateLimitDecision[]) => decisions.map((d) => d.allowed);

  it('asks Redis once for all the decisions of one event-loop turn', async () => {
    const subject = limiter();
    const before = await scriptCalls();
    await Promise.all(Array.from({ length: 30 }, (_, i) => subject.tryConsume(`client-${String(i % 3)}`)));
    expect(await scriptCalls()).to.equal(before + 1);
  });

  it('admits exactly the burst from one key asked 11 times at once, counting down what remains', async () => {
    const subject = limiter();
    const batch = await Promise.all(Array.from({ length: 11 }, () => subject.tryConsume('same')));
    expect(admitted(batch)).to.deep.equal([...Array<boolean>(10).fill(true), false]);
    expect(batch.slice(0, 10).map((d) => d.remaining)).to.deep.equal([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(batch[10]?.retryAfterMs).to.be.within(999, 1000);
  });

  it('decides each key of one batch against its own bucket', async () => {
    const subject = limiter();
    const keys = [...Array<string>(10).fill('busy'), 'quiet', 'busy', 'quiet'];
    const batch = await Promise.all(keys.map((k) => subject.tryConsume(k)));
    expect(admitted(batch)).to.deep.equal([...Array<boolean>(10).fill(true), true, false, true]);
    expect(batch[12]?.remaining).to.equal(8);
  });

  it('sends a batch as soon as it is full, and decides across batches as one bucket', async () => {
    const subject = limiter({ maxBatch: 4 });
    const before = await scriptCalls();
    const batch = await Promise.all(Array.from({ length: 11 }, () => subject.tryConsume('split')));
    expect(await scriptCalls()).to.equal(before + 3);
    expect(admitted(batch)).to.deep.equal([...Array<boolean>(10).fill(true), false]);
  });
});

describe('Redis limiter deadline when Redis stalls', () => {
  let server: PrivateRedis;
  let redis: Redis;

  beforeEach(async () => {
    server = await PrivateRedis.start();
    redis = new Redis(server.url, limiterRedisOptions(100));
    await redis.connect();
  });
  afterEach(async () => {
    server.thaw();
    redis.disconnect();
    await server.stop();
  });

  /** Milliseconds from the call until `decision` settled, either way. */
  async function settledAfter(decision: () => Promise<unknown>): Promise<number> {
    const started = performance.now();
    await decision().catch(() => undefined);
    return performance.now() - started;
  }

  it('fails every decision of every batch within one timeout of its call when Redis is frozen', async () => {
    const subject = new RedisLimiter({ redis, policy: { rps: 1000, burst: 1000 }, timeoutMs: 100 });
    await subject.tryConsume('warm');
    server.freeze();
    const first = Array.from({ length: 20 }, () => settledAfter(() => subject.tryConsume('a')));
    await sleep(40);
    // Sent while the first batch is still unanswered: it must not wait for that one.
    const second = Array.from({ length: 20 }, () => settledAfter(() => subject.tryConsume('b')));
    const elapsed = await Promise.all([...first, ...second]);
    // 100 ms each, with room for a loaded machine; two timeouts in a row would be 200 ms or more.
    expect(Math.max(...elapsed)).to.be.below(180);
    expect(Math.min(...elapsed)).to.be.at.least(95);
  });

  it('answers in-process within the timeout while Redis is frozen, and from Redis again once it thaws', async () => {
    const metrics = createMetrics(new Registry());
    const limiter = createRateLimiter({ redisUrl: server.url, policy: { rps: 1000, burst: 1000 }, redisTimeoutMs: 100, log: pino({ level: 'silent' }), metrics });
    try {
      await waitFor(() => limiter.health() === 'ok', 5000, 'the limiter to reach Redis');
      server.freeze();
      const elapsed = await Promise.all(Array.from({ length: 20 }, () => settledAfter(() => limiter.consume('c'))));
      expect(Math.max(...elapsed)).to.be.below(180);
      expect(limiter.health()).to.equal('degraded');
      server.thaw();
      // One probe per 500 ms tries Redis again.
      const deadline = Date.now() + 3000;
      while (limiter.health() !== 'ok' && Date.now() < deadline) {
        await limiter.consume('c');
        await sleep(50);
      }
      expect(limiter.health()).to.equal('ok');
    } finally {
      await limiter.close();
    }
  });
});
