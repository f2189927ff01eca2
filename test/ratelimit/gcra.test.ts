import { expect } from 'chai';
import { decide, gcraParams } from '../../service/ratelimit/gcra.js';

describe('GCRA (the bucket arithmetic shared by both limiters)', () => {
  const params = gcraParams({ rps: 100, burst: 10 });

  /** Sends `n` requests at the same instant and returns the decisions and the final TAT. */
  function burstAt(now: number, n: number, tat?: number) {
    const decisions = [];
    for (let i = 0; i < n; i++) {
      const d = decide(tat, now, params);
      decisions.push(d);
      tat = d.tat;
    }
    return { decisions, tat };
  }

  it('admits exactly `burst` requests at once from a full bucket and refuses the next', () => {
    const { decisions } = burstAt(1_000, 11);
    expect(decisions.map((d) => d.allowed)).to.deep.equal([...Array<boolean>(10).fill(true), false]);
  });

  it('counts down what remains with each admitted request', () => {
    const { decisions } = burstAt(1_000, 10);
    expect(decisions.map((d) => d.remaining)).to.deep.equal([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  });

  it('tells a refused request to retry when one token has refilled (one interval, 10 ms)', () => {
    const { decisions } = burstAt(1_000, 11);
    expect(decisions[10]).to.include({ allowed: false, remaining: 0, retryAfterMs: 10, resetMs: 100 });
  });

  it('admits again exactly one interval after the bucket ran dry, and not a moment before', () => {
    const { tat } = burstAt(1_000, 10);
    expect(decide(tat, 1_009.999, params).allowed).to.equal(false);
    expect(decide(tat, 1_010, params).allowed).to.equal(true);
  });

  it('reports the time until the bucket is full again', () => {
    const { decisions } = burstAt(1_000, 3);
    expect(decisions.map((d) => d.resetMs)).to.deep.equal([10, 20, 30]);
  });

  it('never holds more than `burst` tokens, however long the bucket sat idle', () => {
    const { tat } = burstAt(1_000, 10);
    const later = burstAt(1_000_000, 11, tat);
    expect(later.decisions.filter((d) => d.allowed)).to.have.length(10);
  });

  it('admits the sustained rate: 100 requests spread over a second after the burst', () => {
    let { tat } = burstAt(0, 10);
    let admitted = 0;
    // 1000 attempts at 1 ms spacing: one token per 10 ms.
    for (let now = 1; now <= 1000; now++) {
      const d = decide(tat, now, params);
      if (d.allowed) admitted++;
      tat = d.tat;
    }
    expect(admitted).to.equal(100);
  });

  it('counts whole tokens when the interval is not a round number of milliseconds', () => {
    const thirds = gcraParams({ rps: 3, burst: 3 });
    const first = decide(undefined, 0, thirds);
    const second = decide(first.tat, 0, thirds);
    expect([first.remaining, second.remaining]).to.deep.equal([2, 1]);
  });

  it('rejects a policy that cannot admit anything', () => {
    expect(() => gcraParams({ rps: 0, burst: 10 })).to.throw(RangeError);
    expect(() => gcraParams({ rps: 10, burst: 0 })).to.throw(RangeError);
  });
});
