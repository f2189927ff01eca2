import { expect } from 'chai';
import { startTestApp, useTestApp, type TestApp } from '../support/app.js';
import { call, expectMatchesSpec } from '../support/spec.js';

describe('probes', () => {
  const suite = useTestApp();
  afterEach(() => { suite.app.draining.value = false; });

  it('/health answers 200', async () => {
    const res = await call(`${suite.app.baseUrl}/health`);
    expect(res.status).to.equal(200);
    expectMatchesSpec(res, 'getHealth');
  });

  it('/ready answers 200 with the database check when PostgreSQL answers', async () => {
    const res = await call(`${suite.app.baseUrl}/ready`);
    expect(res.status).to.equal(200);
    expectMatchesSpec(res, 'getReady');
    expect((res.body as { checks: Record<string, string> }).checks.database).to.equal('ok');
  });

  it('/ready answers 503 naming the shutdown while the process drains', async () => {
    suite.app.draining.value = true;
    const res = await call(`${suite.app.baseUrl}/ready`);
    expect(res.status).to.equal(503);
    expectMatchesSpec(res, 'getReady');
    expect((res.body as { checks: Record<string, string> }).checks.shutdown).to.equal('draining');
    expect(res.headers.get('connection')).to.equal('close');
  });

  it('/openapi.json serves the contract', async () => {
    const res = await call(`${suite.app.baseUrl}/openapi.json`);
    expect(res.status).to.equal(200);
    expect(res.body).to.have.nested.property('paths./api/users.post.operationId', 'createUser');
  });

  it('sets security headers and discloses no server technology', async () => {
    const res = await call(`${suite.app.baseUrl}/health`);
    expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(res.headers.get('content-security-policy')).to.include("default-src 'none'");
    expect(res.headers.get('x-powered-by')).to.equal(null);
  });

  it('sends the five security headers a JSON API needs and none meant for HTML documents', async () => {
    const res = await call(`${suite.app.baseUrl}/health`);
    expect(res.headers.get('content-security-policy')).to.equal("default-src 'none'; frame-ancestors 'none'");
    expect(res.headers.get('referrer-policy')).to.equal('no-referrer');
    expect(res.headers.get('cross-origin-resource-policy')).to.equal('same-origin');
    expect(res.headers.get('strict-transport-security')).to.equal('max-age=31536000');
    for (const documentOnly of ['x-frame-options', 'x-xss-protection', 'x-dns-prefetch-control', 'x-download-options', 'x-permitted-cross-domain-policies', 'origin-agent-cluster', 'cross-origin-opener-policy']) {
      expect(res.headers.get(documentOnly), documentOnly).to.equal(null);
    }
  });

  it('grants no CORS access unless origins are configured', async () => {
    const res = await call(`${suite.app.baseUrl}/api/users`, { headers: { origin: 'https://evil.example' } });
    expect(res.headers.get('access-control-allow-origin')).to.equal(null);
  });
});

describe('when PostgreSQL cannot be reached', () => {
  let app: TestApp;
  before(async () => {
    // Port 1 on loopback refuses connections at once: an outage without waiting for timeouts.
    app = await startTestApp('postgres://postgres@127.0.0.1:1/test', { DB_ACQUIRE_TIMEOUT: '1s' });
  });
  after(async () => { await app.close(); });

  it('/health still answers 200', async () => {
    expect((await call(`${app.baseUrl}/health`)).status).to.equal(200);
  });

  it('/ready answers 503 naming the database, without hanging', async () => {
    const start = performance.now();
    const res = await call(`${app.baseUrl}/ready`);
    // The ping gives up after 0.9 s by design; the bound leaves a loaded machine room and still
    // fails a readiness check that waits on the pool or a socket timeout.
    expect(performance.now() - start).to.be.below(3_000);
    expect(res.status).to.equal(503);
    expectMatchesSpec(res, 'getReady');
    expect((res.body as { checks: Record<string, string> }).checks.database).to.equal('failed');
  });

  it('the API answers a fast 503 problem, not a 500 or a hang', async () => {
    const start = performance.now();
    const res = await call(`${app.baseUrl}/api/users/1`);
    // DB_ACQUIRE_TIMEOUT (1 s) is what makes it fast; the bound leaves a loaded machine room.
    expect(performance.now() - start).to.be.below(3_000);
    expect(res.status).to.equal(503);
    expectMatchesSpec(res, 'getUser');
  });
});
