import { expect } from 'chai';
import { startTestApp, useTestApp } from './support/app.js';
import { call, postJson } from './support/spec.js';

describe('request logging', () => {
  const suite = useTestApp();

  const accessLines = (requestId: string) => suite.app.logs.filter((l) => l.requestId === requestId && l.msg === 'request');

  it('returns a generated X-Request-ID when the caller sends none', async () => {
    const res = await call(`${suite.app.baseUrl}/health`);
    expect(res.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
  });

  it('keeps a sane caller X-Request-ID', async () => {
    const res = await call(`${suite.app.baseUrl}/health`, { headers: { 'x-request-id': 'trace-abc.123' } });
    expect(res.headers.get('x-request-id')).to.equal('trace-abc.123');
  });

  it('replaces an X-Request-ID that is too long or carries unsafe characters', async () => {
    for (const bad of ['x'.repeat(129), 'a b', 'evil"}{', 'line\tbreak']) {
      const res = await call(`${suite.app.baseUrl}/health`, { headers: { 'x-request-id': bad } });
      expect(res.headers.get('x-request-id')).to.not.equal(bad);
    }
  });

  it('writes one access line per request with method, route template, status, duration and request id', async () => {
    const res = await call(`${suite.app.baseUrl}/api/users/123456`, { headers: { 'x-request-id': 'one-line-test' } });
    expect(res.status).to.equal(404);
    const lines = accessLines('one-line-test');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({ method: 'GET', route: '/api/users/{id}', status: 404 });
    expect(lines[0]?.durationMs).to.be.a('number');
  });

  it('stamps the request id on lines written deep inside the request', async () => {
    // A 503 from an unreachable database is logged by the error handler, not the access logger.
    const broken = await startTestApp('postgres://postgres@127.0.0.1:1/test');
    try {
      await call(`${broken.baseUrl}/api/users/1`, { headers: { 'x-request-id': 'deep-line-test' } });
      const lines = broken.logs.filter((l) => l.requestId === 'deep-line-test');
      expect(lines.map((l) => l.msg)).to.include.members(['dependency unavailable', 'request']);
    } finally {
      await broken.close();
    }
  });

  it('never logs credentials sent in headers or bodies', async () => {
    await postJson(`${suite.app.baseUrl}/api/users`, { name: 'x', email: 'not-an-email', password: 'hunter2-body' }, {
      authorization: 'Bearer hunter2-header',
      cookie: 'session=hunter2-cookie',
    });
    const all = JSON.stringify(suite.app.logs);
    expect(all).to.not.include('hunter2');
  });

  it('writes on the access line only the fields it names, never a query string, header or body', async () => {
    await postJson(`${suite.app.baseUrl}/api/users?token=hunter2-query&password=hunter2-query`, { name: 'x', email: 'x@example.com', password: 'hunter2-body' }, {
      authorization: 'Bearer hunter2-header',
      'x-request-id': 'fields-test',
    });
    const [line] = accessLines('fields-test');
    expect(Object.keys(line ?? {}).sort()).to.deep.equal(['durationMs', 'level', 'method', 'msg', 'path', 'requestId', 'route', 'service', 'status', 'time']);
    expect(JSON.stringify(line)).to.not.include('hunter2');
  });

  it('never logs the database password', async () => {
    const withPassword = await startTestApp(suite.db.url.replace('postgres@', 'postgres:sup3rsecret@'));
    try {
      await call(`${withPassword.baseUrl}/health`);
      expect(JSON.stringify(withPassword.logs)).to.not.include('sup3rsecret');
    } finally {
      await withPassword.close();
    }
  });
});
