import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { expect } from 'chai';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { IdentityProvider } from '../support/identity-provider.js';
import { call } from '../support/spec.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The identity provider down: tokens that need its keys get 503, the service stays ready and recovers alone. */
describe('authentication while the identity provider is unreachable', () => {
  let idp: IdentityProvider;
  let db: TestDatabase;
  let app: TestApp;
  const COOLDOWN_MS = 500;

  before(async () => {
    idp = await IdentityProvider.start();
    db = await createTestDatabase();
    app = await startTestApp(db.url, { AUTH_ISSUER: idp.issuer, AUTH_AUDIENCE: idp.audience, AUTH_JWKS_COOLDOWN: `${COOLDOWN_MS}ms` });
  });
  after(async () => {
    await app.close();
    await db.drop();
    await idp.stop();
  });

  const getUsers = (token: string) => call(`${app.baseUrl}/api/users`, { headers: { authorization: `Bearer ${token}` } });

  it('answers 503 problem+json, stays ready, and serves again once the provider is back', async () => {
    const token = await idp.forge({});
    const keys = idp.keys;
    await idp.stop();

    const refused = await getUsers(token);
    expect(refused.status).to.equal(503);
    expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect((await call(`${app.baseUrl}/ready`)).status, '/ready').to.equal(200);

    // Within the cooldown the next request is answered without another attempt.
    const requestsBefore = idp.jwksRequests;
    expect((await getUsers(token)).status).to.equal(503);
    expect(idp.jwksRequests).to.equal(requestsBefore);
    expect(app.logs.filter((l) => l.level === 'warn' && /signing keys/.test(String(l.msg))).length, 'one warning per attempt').to.be.at.least(1);

    await idp.restart(keys);
    await sleep(COOLDOWN_MS);
    expect((await getUsers(token)).status).to.equal(200);
  });
});

describe('authentication when the JWKS endpoint accepts connections but never answers', () => {
  let db: TestDatabase;
  let app: TestApp;
  let blackhole: Server;
  const sockets = new Set<Socket>();

  before(async () => {
    blackhole = createServer((socket) => { sockets.add(socket); });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const { port } = blackhole.address() as AddressInfo;
    db = await createTestDatabase();
    app = await startTestApp(db.url, {
      AUTH_ISSUER: 'https://issuer.example.test',
      AUTH_AUDIENCE: 'users',
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks`,
      AUTH_JWKS_TIMEOUT: '500ms',
    });
  });
  after(async () => {
    await app.close();
    await db.drop();
    for (const socket of sockets) socket.destroy();
    blackhole.close();
  });

  it('gives up after AUTH_JWKS_TIMEOUT and answers 503 instead of hanging', async () => {
    const token = `${Buffer.from('{"alg":"ES256","typ":"at+jwt","kid":"k"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.c2ln`;
    const res = await call(`${app.baseUrl}/api/users`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).to.equal(503);
    expect(sockets.size, 'the JWKS endpoint was asked').to.equal(1);
  });
});

describe('authentication off (no AUTH_ISSUER)', () => {
  let db: TestDatabase;
  let app: TestApp;
  before(async () => {
    db = await createTestDatabase();
    app = await startTestApp(db.url);
  });
  after(async () => {
    await app.close();
    await db.drop();
  });

  it('serves /api without a token and says so once, at start', async () => {
    expect((await call(`${app.baseUrl}/api/users`)).status).to.equal(200);
    expect((await call(`${app.baseUrl}/api/users`)).status).to.equal(200);
    expect(app.logs.filter((l) => l.level === 'warn' && /AUTH_ISSUER is not set/.test(String(l.msg)))).to.have.length(1);
  });

  it('still marks user data as not storable', async () => {
    expect((await call(`${app.baseUrl}/api/users`)).headers.get('cache-control')).to.equal('no-store');
  });
});
