import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createApp } from '../../service/app.js';
import { loadConfig } from '../../service/config.js';
import { openDependencies } from '../../service/dependencies.js';
import { createLogger } from '../../service/observability/logger.js';
import { useTestApp } from '../support/app.js';
import { createTestDatabase } from '../support/database.js';
import { call } from '../support/spec.js';

describe('error answers outside the handlers', () => {
  const suite = useTestApp();

  it('answers an unknown method on an unknown path with 404, not 405 with an empty Allow', async () => {
    const res = await call(`${suite.app.baseUrl}/nope`, { method: 'PURGE' });
    expect(res.status).to.equal(404);
    expect(res.headers.get('allow')).to.equal(null);
    expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
  });

  it('answers an unknown method on a known path with 405 and its Allow', async () => {
    const res = await call(`${suite.app.baseUrl}/api/users`, { method: 'PURGE' });
    expect(res.status).to.equal(405);
    expect(res.headers.get('allow')).to.match(/GET/);
  });

  it('turns an error above the problem middleware into a logged problem+json 500', async () => {
    // A dependency that fails where only the outer middleware calls it: the drain check.
    const db = await createTestDatabase();
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, done) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>); done(); } });
    const config = loadConfig({ DATABASE_URL: db.url, PORT: '0' });
    const log = createLogger('info', sink);
    const deps = await openDependencies(config, log);
    const app = createApp({ config, log, ...deps, isDraining: () => { throw new Error('drain state unreadable'); } });
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const { port } = server.address() as { port: number };
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      expect(res.status).to.equal(500);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect(await res.json()).to.include({ status: 500, title: 'Internal server error' });
      expect(lines.filter((l) => l.level === 'error' && typeof l.requestId === 'string')).to.have.length(1);
    } finally {
      server.close();
      await deps.close();
      await db.drop();
    }
  });
});
