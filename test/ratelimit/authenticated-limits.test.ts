import { expect } from 'chai';
import type { TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { IdentityProvider } from '../support/identity-provider.js';
import { flushRedis, get, PrivateRedis, startLimitedApp } from './support.js';

/**
 * Authentication and the limiter together, on the real app with a real OpenID Provider and a
 * private Redis: who gets which budget, and in which order the checks run. Burst 10, one token a
 * second, a trusted proxy so that each request can come from the address the test chooses.
 */
describe('rate limiting with authentication', () => {
  let idp: IdentityProvider;
  let db: TestDatabase;
  let redis: PrivateRedis;
  let app: TestApp;

  before(async () => {
    idp = await IdentityProvider.start();
    db = await createTestDatabase();
    redis = await PrivateRedis.start();
  });
  after(async () => {
    await redis.stop();
    await db.drop();
    await idp.stop();
  });
  beforeEach(async () => {
    await flushRedis(redis.url);
    app = await startLimitedApp(db.url, redis.url, { TRUST_PROXY_HOPS: '1', AUTH_ISSUER: idp.issuer, AUTH_AUDIENCE: idp.audience });
  });
  afterEach(async () => { await app.close(); });

  const users = () => `${app.baseUrl}/api/users`;
  const from = (address: string, token?: string) => ({ 'x-forwarded-for': address, ...(token ? { authorization: `Bearer ${token}` } : {}) });

  it('gives one client one budget, however many addresses it sends from', async () => {
    const token = await idp.token('reader');
    const responses = await Promise.all(Array.from({ length: 11 }, (_, i) => get(users(), from(`198.51.100.${i + 1}`, token))));
    expect(responses.map((r) => r.status).sort()).to.deep.equal([...Array<number>(10).fill(200), 429]);
  });

  it('gives each client its own budget behind one address', async () => {
    const [reader, both] = [await idp.token('reader'), await idp.token('both')];
    const spent = await Promise.all(Array.from({ length: 11 }, () => get(users(), from('203.0.113.5', reader))));
    expect(spent.filter((r) => r.status === 429), 'reader spent').to.have.length(1);
    expect((await get(users(), from('203.0.113.5', both))).status, 'another client, same address').to.equal(200);
  });

  it('limits requests without a valid token per address, and answers the ones within budget with 401', async () => {
    const responses = await Promise.all(Array.from({ length: 11 }, () => get(users(), from('203.0.113.9', 'not.a.token'))));
    expect(responses.map((r) => r.status).sort()).to.deep.equal([...Array<number>(10).fill(401), 429]);
    for (const r of responses) expect(r.headers.get('ratelimit'), 'limited before the 401').to.not.equal(null);
  });

  it('refuses an address that keeps sending bad tokens before checking any further signature', async () => {
    const fresh = await idp.token('both');
    await Promise.all(Array.from({ length: 11 }, () => get(users(), from('203.0.113.10', 'not.a.token'))));
    // A valid token never seen before: verifying it would key the request to its client's fresh
    // budget and serve it; refused from the address's remembered refusal, it was never verified.
    const unverified = await get(users(), from('203.0.113.10', fresh));
    expect(unverified.status).to.equal(429);
    expect((await get(users(), from('203.0.113.11', await idp.token('both')))).status, 'the same client elsewhere').to.equal(200);
  });

  it('still serves a client whose token it verified earlier from an address refused for bad tokens', async () => {
    const token = await idp.token('reader');
    expect((await get(users(), from('203.0.113.12', token))).status).to.equal(200);
    await Promise.all(Array.from({ length: 11 }, () => get(users(), from('203.0.113.12', 'not.a.token'))));
    expect((await get(users(), from('203.0.113.12', token))).status).to.equal(200);
  });
});
