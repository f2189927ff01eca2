import { expect } from 'chai';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startServiceProcess, type ServiceProcess } from '../support/service-process.js';
import { LEAK_PATTERNS, postUser, problemErrors, securityHeaderErrors, send, type Reply } from './support.js';

const SECRETS = {
  bearer: 'Bearer sekrit-bearer-7f3a9c',
  basic: `Basic ${Buffer.from('admin:sekrit-basic-5d1e').toString('base64')}`,
  cookie: 'session=sekrit-cookie-2b8d; other=sekrit-cookie-9e4f',
  apiKey: 'sekrit-apikey-6c0b',
  proxyAuth: 'Basic sekrit-proxy-1a2b',
  password: 'sekrit-password-3e5f',
  token: 'sekrit-token-8d7c',
  dbPassword: 'sekrit-dbpass-4a6e',
};

/** Every kind of response the service gives, for the header checks. */
async function everyKindOfResponse(port: number): Promise<[string, Reply][]> {
  const json = { 'content-type': 'application/json' };
  const created = await postUser(port, { name: 'Headers', email: `headers-${port}@example.com` });
  return [
    ['201', created],
    ['200 get', await send(port, { path: '/api/users/1' })],
    ['200 list', await send(port, { path: '/api/users' })],
    ['health', await send(port, { path: '/health' })],
    ['ready', await send(port, { path: '/ready' })],
    ['openapi', await send(port, { path: '/openapi.json' })],
    ['400', await send(port, { method: 'POST', path: '/api/users', headers: json, body: '{"name":1}' })],
    ['400 json', await send(port, { method: 'POST', path: '/api/users', headers: json, body: '{' })],
    ['404', await send(port, { path: '/nope' })],
    ['405', await send(port, { method: 'DELETE', path: '/api/users' })],
    ['409', await postUser(port, { name: 'Headers', email: `headers-${port}@example.com` })],
    ['413', await send(port, { method: 'POST', path: '/api/users', headers: json, body: JSON.stringify({ name: 'x'.repeat(20_000) }) })],
    ['415', await send(port, { method: 'POST', path: '/api/users', headers: { 'content-type': 'text/plain' }, body: 'x' })],
    ['431', await send(port, { path: '/api/users', headers: { 'x-big': 'x'.repeat(20_000) } })],
    ['HEAD', await send(port, { method: 'HEAD', path: '/api/users' })],
    ['OPTIONS', await send(port, { method: 'OPTIONS', path: '/api/users' })],
  ];
}

describe('security defaults', function () {
  let db: TestDatabase;
  before(async () => { db = await createTestDatabase(); });
  after(async () => { await db.drop(); });

  describe('without CORS_ORIGINS', () => {
    let service: ServiceProcess;
    before(async () => {
      const url = new URL(db.url);
      url.password = SECRETS.dbPassword; // trust authentication ignores it; the logs must not show it
      service = await startServiceProcess({ DATABASE_URL: url.toString(), LOG_LEVEL: 'trace', RATE_LIMIT_RPS: '1000000', RATE_LIMIT_BURST: '1000000' });
    });
    after(async () => { await service.stop('SIGKILL'); });

    it('sends the security headers, and no X-Powered-By or Server, on every kind of response', async () => {
      const replies = await everyKindOfResponse(service.port);
      const problems = replies.flatMap(([what, reply]) => securityHeaderErrors(reply.headers).map((p) => `${what} (${reply.status}): ${p}`));
      expect(problems).to.deep.equal([]);
      const errors = replies.filter(([, r]) => r.status >= 400 && r.text !== '');
      expect(errors.flatMap(([what, r]) => problemErrors(r).map((p) => `${what}: ${p}`))).to.deep.equal([]);
      expect(replies.filter(([, r]) => LEAK_PATTERNS.some((p) => p.test(r.text))).map(([what]) => what)).to.deep.equal([]);
      expect(replies.map(([, r]) => r.status)).to.include.members([201, 200, 400, 404, 405, 409, 413, 415, 431]);
    });

    it('grants no CORS to any origin, simple or preflight', async () => {
      const simple = await send(service.port, { path: '/api/users', headers: { origin: 'https://evil.example' } });
      const preflight = await send(service.port, {
        method: 'OPTIONS',
        path: '/api/users',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      for (const reply of [simple, preflight]) {
        expect(Object.keys(reply.headers).filter((h) => h.startsWith('access-control-'))).to.deep.equal([]);
      }
      expect(simple.status).to.equal(200);
    });

    it('keeps credentials from headers and bodies out of the logs', async () => {
      const headers = {
        authorization: SECRETS.bearer,
        cookie: SECRETS.cookie,
        'x-api-key': SECRETS.apiKey,
        'proxy-authorization': SECRETS.proxyAuth,
        'content-type': 'application/json',
      };
      await send(service.port, { path: '/api/users', headers });
      await send(service.port, { path: '/nope', headers: { ...headers, authorization: SECRETS.basic } });
      await send(service.port, { method: 'POST', path: '/api/users', headers, body: JSON.stringify({ name: 'Pat', email: 'pat@example.com', password: SECRETS.password }) });
      await send(service.port, { method: 'POST', path: '/api/users', headers, body: JSON.stringify({ name: 'Tok', email: 'tok@example.com', token: SECRETS.token, nested: { password: SECRETS.password } }) });
      await send(service.port, { method: 'POST', path: '/api/users', headers, body: `{"password":"${SECRETS.password}", broken` });
      await send(service.port, { path: `/api/users?password=${SECRETS.password}&token=${SECRETS.token}`, headers });
      const stopped = await service.stop('SIGTERM');
      expect(stopped).to.equal(0);
      const output = service.output();
      expect(service.lines.length, 'trace logging produced lines').to.be.greaterThan(6);
      const leaked = Object.entries(SECRETS).filter(([, secret]) => output.includes(secret.replace(/^(Bearer|Basic) /, '')));
      expect(leaked.map(([name]) => name)).to.deep.equal([]);
      expect(output).to.not.include(Buffer.from('admin:sekrit-basic-5d1e').toString('base64'));
    });
  });

  describe('with CORS_ORIGINS', () => {
    let service: ServiceProcess;
    before(async () => {
      service = await startServiceProcess({ DATABASE_URL: db.url, CORS_ORIGINS: 'https://app.example, https://admin.example' });
    });
    after(async () => { await service.stop('SIGKILL'); });

    it('opens CORS to the configured origins only', async () => {
      const preflight = (origin: string) =>
        send(service.port, { method: 'OPTIONS', path: '/api/users', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
      const allowed = await send(service.port, { path: '/api/users', headers: { origin: 'https://app.example' } });
      expect(allowed.headers['access-control-allow-origin']).to.equal('https://app.example');
      expect(allowed.headers.vary).to.match(/origin/i);
      expect(allowed.headers['access-control-allow-credentials']).to.equal(undefined);
      const allowedPreflight = await preflight('https://admin.example');
      expect(allowedPreflight.status).to.be.oneOf([200, 204]);
      expect(allowedPreflight.headers['access-control-allow-origin']).to.equal('https://admin.example');
      expect(allowedPreflight.headers['access-control-allow-methods']).to.match(/POST/);
      for (const reply of [await send(service.port, { path: '/api/users', headers: { origin: 'https://evil.example' } }), await preflight('https://evil.example'), await preflight('null')]) {
        expect(reply.headers['access-control-allow-origin'] ?? '').to.equal('');
        expect(reply.headers['access-control-allow-methods']).to.equal(undefined);
      }
      expect(securityHeaderErrors(allowedPreflight.headers)).to.deep.equal([]);
    });
  });
});
