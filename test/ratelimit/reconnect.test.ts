import { expect } from 'chai';
import { reconnectDelayMs } from '../../service/ratelimit/create-rate-limiter.js';

// The reliability suite waits a fixed while for the limiter to be back on Redis after an outage; that wait is
// only meaningful because the backoff between reconnection attempts has this cap.
describe('Redis reconnection backoff', () => {
  it('tries again soon after a drop, then never less often than every 2 s, however long Redis is away', () => {
    const delays = Array.from({ length: 1000 }, (_, i) => reconnectDelayMs(i + 1));
    expect(delays.slice(0, 3)).to.deep.equal([100, 200, 400]);
    expect(Math.max(...delays)).to.equal(2000);
    expect(delays.slice(10).every((d) => d === 2000), 'steady at the cap').to.equal(true);
  });
});
