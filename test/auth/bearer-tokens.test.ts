import { expect } from 'chai';
import { exportJWK, SignJWT } from 'jose';
import { loadOpenApi } from '../../service/openapi/contract.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { IdentityProvider, signingKey } from '../support/identity-provider.js';
import { sumOf, parseMetrics } from '../support/prometheus.js';
import { call, postJson, type ApiResponse } from '../support/spec.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * The real app, configured with AUTH_ISSUER only (keys found through OpenID discovery), against a
 * real OpenID Provider. Each refusal is checked as a client sees it: status, challenge, body.
 */
describe('authentication: OAuth 2.0 bearer tokens from the issuer', () => {
  let idp: IdentityProvider;
  let db: TestDatabase;
  let app: TestApp;
  const COOLDOWN_MS = 1000;

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

  const users = () => `${app.baseUrl}/api/users`;
  const withToken = (token: string, init: RequestInit = {}) => ({ ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } });
  const getUsers = (token: string) => call(users(), withToken(token));

  function expectChallenge(res: ApiResponse, status: number, challenge: RegExp): void {
    expect(res.status).to.equal(status);
    expect(res.headers.get('www-authenticate')).to.match(challenge);
    expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(res.body).to.include({ status });
  }
  const invalidToken = (res: ApiResponse) => { expectChallenge(res, 401, /^Bearer realm="users-service", error="invalid_token"$/); };

  it('serves a client whose token, from the token endpoint, carries the scope', async () => {
    const token = await idp.token('both');
    const created = await postJson(users(), { name: 'Ada', email: 'ada@example.com' }, { authorization: `Bearer ${token}` });
    expect(created.status).to.equal(201);
    const read = await getUsers(token);
    expect(read.status).to.equal(200);
  });

  it('answers a request without a token with 401 and a bare Bearer challenge', async () => {
    const res = await call(users());
    expectChallenge(res, 401, /^Bearer realm="users-service", scope="users:read"$/);
    expect(res.headers.get('www-authenticate')).not.to.include('error=');
  });

  it('refuses an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    invalidToken(await getUsers(await idp.forge({ iat: now - 600, exp: now - 120 })));
  });

  it('accepts a token that expired within the 30 s clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await getUsers(await idp.forge({ iat: now - 600, exp: now - 5 }))).status).to.equal(200);
  });

  it('refuses a token that is not valid yet', async () => {
    const now = Math.floor(Date.now() / 1000);
    invalidToken(await getUsers(await idp.forge({ nbf: now + 120 })));
  });

  it('refuses a token for another audience', async () => {
    invalidToken(await getUsers(await idp.forge({ aud: 'https://other-api.example.test' })));
  });

  it('refuses a token from another issuer', async () => {
    invalidToken(await getUsers(await idp.forge({ iss: 'https://evil.example.test' })));
  });

  it('refuses a token that is not typed at+jwt (an ID token, say)', async () => {
    invalidToken(await getUsers(await idp.forge({}, { header: { typ: 'JWT' } })));
  });

  it('refuses an unsigned token (alg none)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: idp.issuer, aud: idp.audience, client_id: 'both', scope: 'users:read users:write', iat: now, exp: now + 300 };
    invalidToken(await getUsers(`${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(payload)}.`));
  });

  it("refuses an HMAC token whose secret is the issuer's public key", async () => {
    const publicJwk = { ...idp.currentKey.jwk, d: undefined };
    const jwks = (await (await fetch(`${idp.issuer}/jwks`)).text());
    for (const secret of [JSON.stringify(publicJwk), jwks]) {
      const token = await new SignJWT({ client_id: 'both', scope: 'users:read users:write' })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: idp.currentKey.kid })
        .setIssuer(idp.issuer).setAudience(idp.audience).setIssuedAt().setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
      invalidToken(await getUsers(token));
    }
  });

  it('says nothing about why a token failed beyond invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await getUsers(await idp.forge({ exp: now - 120 }));
    const wrongAudience = await getUsers(await idp.forge({ aud: 'x' }));
    const first = { ...(expired.body as Record<string, unknown>), instance: undefined };
    const second = { ...(wrongAudience.body as Record<string, unknown>), instance: undefined };
    expect(first).to.deep.equal(second);
    expect(JSON.stringify(first)).not.to.match(/exp|aud|signature|claim/i);
  });

  it('reads no token from the query string', async () => {
    const token = await idp.token('both');
    const res = await call(`${users()}?access_token=${token}`);
    expectChallenge(res, 401, /^Bearer realm="users-service", scope="users:read"$/);
  });

  it('answers an oversized Authorization header with 400 invalid_request, unread', async () => {
    const res = await call(users(), { headers: { authorization: `Bearer ${'a'.repeat(9000)}` } });
    expectChallenge(res, 400, /^Bearer realm="users-service", error="invalid_request"$/);
  });

  it('answers an Authorization header beyond the 16 KiB header limit with 431', async () => {
    const res = await fetch(users(), { headers: { authorization: `Bearer ${'a'.repeat(20_000)}` } });
    expect(res.status).to.equal(431);
  });

  it('answers an Authorization header that is not a bearer token with 400 invalid_request', async () => {
    const res = await call(users(), { headers: { authorization: 'Basic Ym90aDpib3RoLXNlY3JldA==' } });
    expectChallenge(res, 400, /error="invalid_request"/);
  });

  describe('scopes, as openapi.yaml declares them, on every operation', () => {
    const doc = loadOpenApi();
    const operations = Object.entries(doc.paths).flatMap(([template, methods]) =>
      Object.entries(methods)
        .filter(([, op]) => (op.security?.length ?? 0) > 0)
        .map(([method, op]) => ({ method: method.toUpperCase(), template, operationId: op.operationId, scopes: Object.values(op.security![0]!).flat() })),
    );

    it('declares a scope on every /api operation', () => {
      const api = Object.entries(doc.paths).filter(([path]) => path.startsWith('/api')).flatMap(([, methods]) => Object.values(methods));
      expect(api.length).to.be.greaterThan(0);
      for (const op of api) expect(Object.values(op.security?.[0] ?? {}).flat(), op.operationId).to.have.length.greaterThan(0);
      expect(operations).to.have.length(api.length);
    });

    for (const client of ['reader', 'writer'] as const) {
      it(`answers 403 insufficient_scope to the ${client} client on every operation whose scope it lacks`, async () => {
        const token = await idp.token(client);
        const granted = new Set([client === 'reader' ? 'users:read' : 'users:write']);
        let refused = 0;
        for (const op of operations) {
          const url = `${app.baseUrl}${op.template.replace(/\{\w+\}/g, '1')}`;
          const body = op.method === 'GET' || op.method === 'DELETE' ? undefined : JSON.stringify({ name: 'Scoped', email: `scoped-${client}@example.com` });
          const res = await call(url, withToken(token, { method: op.method, body, headers: { 'content-type': 'application/json' } }));
          if (op.scopes.every((s) => granted.has(s))) {
            expect(res.status, `${op.operationId} with ${client}`).not.to.be.oneOf([401, 403]);
            continue;
          }
          refused += 1;
          expectChallenge(res, 403, new RegExp(`^Bearer realm="users-service", error="insufficient_scope", scope="${op.scopes.join(' ')}"$`));
        }
        expect(refused, 'operations refused').to.be.greaterThan(0);
      });
    }
  });

  it('needs no token for the probes and the contract', async () => {
    for (const path of ['/health', '/ready', '/openapi.json']) expect((await call(`${app.baseUrl}${path}`)).status, path).to.equal(200);
  });

  it('logs the client id of each authenticated request, never its token', async () => {
    const token = await idp.token('reader');
    await getUsers(token);
    const line = app.logs.filter((l) => l.msg === 'request' && l.clientId === 'reader').at(-1);
    expect(line, 'an access line naming the client').to.not.equal(undefined);
    const signature = token.split('.')[2]!;
    expect(JSON.stringify(app.logs)).not.to.include(signature);
  });

  it('marks user data as not storable and varying by Authorization', async () => {
    const res = await getUsers(await idp.token('reader'));
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(res.headers.get('vary')).to.match(/Authorization/i);
  });

  it('accepts tokens signed with a new key once the issuer publishes it, fetching the JWKS at most once per cooldown', async () => {
    const old = idp.currentKey;
    const next = await signingKey('key-2');
    const early = await idp.forge({}, { key: next });
    const fetchesBefore = idp.jwksRequests;
    // An unknown kid: one refetch at most (none within the cooldown of the last), then 401.
    await sleep(COOLDOWN_MS);
    const floodStarted = performance.now();
    invalidToken(await getUsers(early));
    // A flood of random kids costs one fetch per cooldown, however many arrive (on a quiet machine
    // the whole flood fits in one cooldown: exactly one fetch).
    for (let i = 0; i < 20; i++) invalidToken(await getUsers(await idp.forge({}, { key: { ...next, kid: `random-${i}` } })));
    const cooldowns = Math.floor((performance.now() - floodStarted) / COOLDOWN_MS);
    const fetches = idp.jwksRequests - fetchesBefore;
    expect(fetches, 'JWKS fetches for 21 unknown kids').to.be.at.least(1).and.at.most(1 + cooldowns);
    expect(fetches).to.be.below(21);
    // The rotation: the issuer now publishes (and signs with) the new key; the old one stays published.
    await idp.restart([next, old]);
    await sleep(COOLDOWN_MS);
    expect((await getUsers(early)).status, 'token signed with the new key').to.equal(200);
    expect((await getUsers(await idp.token('reader'))).status, 'fresh token from the rotated issuer').to.equal(200);
    expect((await getUsers(await idp.forge({}, { key: old }))).status, 'old key, still published').to.equal(200);
  });

  it('counts each authentication outcome on the metrics port', async () => {
    const count = async () => parseMetrics(await (await fetch(app.metricsUrl)).text());
    const before = await count();
    await getUsers(await idp.token('reader'));
    await getUsers('not.a.token');
    await call(users(), withToken(await idp.token('reader'), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }));
    await call(users());
    const after = await count();
    for (const outcome of ['authenticated', 'invalid_token', 'insufficient_scope', 'missing']) {
      expect(sumOf(after, 'auth_requests_total', { outcome }) - sumOf(before, 'auth_requests_total', { outcome }), outcome).to.equal(1);
    }
    expect(sumOf(after, 'auth_jwks_fetches_total', { result: 'success' }), 'keys fetched').to.be.greaterThan(0);
  });

  it('uses exportJWK keys of the provider (sanity: the forged-token key is the published one)', async () => {
    const published = ((await (await fetch(`${idp.issuer}/jwks`)).json()) as { keys: { kid: string; x?: string }[] }).keys;
    const mine = await exportJWK(idp.currentKey.privateKey);
    expect(published.find((k) => k.kid === idp.currentKey.kid)?.x).to.equal(mine.x);
  });
});
