import { expect } from 'chai';
import fc from 'fast-check';
import { LocalLimiter } from '../../service/ratelimit/local-limiter.js';

/** A clock the test moves by hand (milliseconds). */
function manualClock(start = 0) {
  const clock = { now: start, advance(ms: number) { clock.now += ms; } };
  return clock;
}

/**
 * The reference semantics, written independently of GCRA: Go's x/time/rate Limiter as a float
 * token bucket. tokens refill at rps per second up to burst; Allow() takes one token when at least
 * one is there, and changes nothing when it refuses.
 */
class GoTokenBucket {
  private tokens: number;
  private last: number;
  constructor(private readonly rps: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }
  /** Tokens available at `now` (Go's advance()), without committing. */
  available(now: number): number {
    return Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rps);
  }
  take(now: number, allowed: boolean): void {
    if (!allowed) return;
    this.tokens = this.available(now) - 1;
    this.last = now;
  }
}

describe('in-process limiter', () => {
  it('admits the burst at once, then one request per interval', () => {
    const clock = manualClock();
    const limiter = new LocalLimiter({ policy: { rps: 100, burst: 10 }, now: () => clock.now, sweepIntervalMs: 0 });
    const burst = Array.from({ length: 11 }, () => limiter.take('a'));
    expect(burst.filter((d) => d.allowed)).to.have.length(10);
    clock.advance(10);
    expect(limiter.take('a').allowed).to.equal(true);
    expect(limiter.take('a').allowed).to.equal(false);
  });

  it('keeps one bucket per key', () => {
    const clock = manualClock();
    const limiter = new LocalLimiter({ policy: { rps: 1, burst: 1 }, now: () => clock.now, sweepIntervalMs: 0 });
    expect(limiter.take('a').allowed).to.equal(true);
    expect(limiter.take('b').allowed).to.equal(true);
    expect(limiter.take('a').allowed).to.equal(false);
  });

  it('forgets a bucket once it is full again, so idle clients leave room for active ones', () => {
    // Forgetting a full bucket changes no decision (a fresh bucket is full too); what it frees is room under
    // maxKeys. If the sweep kept the idle buckets, the newcomers would push out the least recently used one,
    // the drained bucket, and its client would get a fresh burst; if it forgot too much, the same.
    const clock = manualClock();
    const limiter = new LocalLimiter({ policy: { rps: 1, burst: 10 }, now: () => clock.now, sweepIntervalMs: 0, maxKeys: 100 });
    for (let i = 0; i < 10; i++) limiter.take('drained');
    for (let i = 0; i < 99; i++) limiter.take(`idle-${i}`);
    clock.advance(1500);
    limiter.sweep();
    for (let i = 0; i < 99; i++) limiter.take(`newcomer-${i}`);
    const drained = limiter.take('drained');
    expect(drained.allowed, '1.5 tokens refilled in 1.5 s').to.equal(true);
    expect(drained.remaining, 'the drained bucket is still remembered (a fresh one would have 9 left)').to.equal(0);
  });

  it('holds at most maxKeys buckets under a flood of distinct keys, forgetting the least recently used', () => {
    const clock = manualClock();
    const limiter = new LocalLimiter({ policy: { rps: 1, burst: 5 }, now: () => clock.now, sweepIntervalMs: 0, maxKeys: 100 });
    limiter.take('regular');
    for (let i = 0; i < 99; i++) limiter.take(`flood-${i}`);
    limiter.take('regular');
    limiter.take('flood-99');
    expect(limiter.take('regular').remaining, 'the recently used bucket is kept').to.equal(2);
    expect(limiter.take('flood-0').remaining, 'the oldest bucket was forgotten: a fresh one').to.equal(4);
  });

  it("decides like Go's rate.Limiter (float token bucket) for any policy and request timing", () => {
    // Boundary ties (exactly one token, up to float rounding) may go either way in either model;
    // there the reference follows the implementation so the two stay comparable afterwards.
    const EPS = 1e-6;
    const policy = fc.record({
      rps: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 0.1, max: 1000, noNaN: true })),
      burst: fc.integer({ min: 1, max: 50 }),
    });
    // Time steps measured in refill intervals, so that runs land on and right beside the moments
    // a token becomes available (whole and quarter intervals, nudged by ±0.01 % or ±1 %), as well as
    // simultaneous requests and arbitrary gaps.
    const step = fc.record({
      advanceIntervals: fc.oneof(
        { arbitrary: fc.constant(0), weight: 3 },
        {
          arbitrary: fc.tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0, 1e-4, -1e-4, 0.01, -0.01)).map(([q, nudge]) => Math.max(0, q / 4 + nudge)),
          weight: 4,
        },
        { arbitrary: fc.double({ min: 0, max: 100, noNaN: true }), weight: 1 },
      ),
      key: fc.constantFrom('a', 'b'),
    });
    fc.assert(
      fc.property(policy, fc.array(step, { minLength: 1, maxLength: 300 }), ({ rps, burst }, steps) => {
        const clock = manualClock(5_000);
        const limiter = new LocalLimiter({ policy: { rps, burst }, now: () => clock.now, sweepIntervalMs: 0 });
        const models = new Map<string, GoTokenBucket>();
        for (const { advanceIntervals, key } of steps) {
          clock.advance(advanceIntervals * (1000 / rps));
          const model = models.get(key) ?? new GoTokenBucket(rps, burst, clock.now);
          models.set(key, model);
          const tokens = model.available(clock.now);
          const decision = limiter.take(key);
          const tie = Math.abs(tokens - 1) < EPS;
          if (!tie) expect(decision.allowed, `tokens=${tokens}`).to.equal(tokens >= 1);
          model.take(clock.now, decision.allowed);
          const after = model.available(clock.now);
          const intervalMs = 1000 / rps;
          if (decision.allowed) {
            const nearInteger = Math.abs(after - Math.round(after)) < EPS;
            if (!nearInteger) expect(decision.remaining).to.equal(Math.floor(after));
            expect(decision.retryAfterMs).to.equal(0);
          } else {
            expect(decision.remaining).to.equal(0);
            expect(decision.retryAfterMs).to.be.closeTo((1 - tokens) * intervalMs, EPS * intervalMs * burst + 1e-6);
            expect(decision.retryAfterMs).to.be.greaterThan(0);
          }
          expect(decision.resetMs).to.be.closeTo((burst - after) * intervalMs, EPS * intervalMs * burst + 1e-6);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
