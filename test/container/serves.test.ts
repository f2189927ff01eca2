import { expect } from 'chai';
import { json, postUser, send } from '../reliability/support.js';
import { createEmptyDatabase, runOnce, startService, type ServiceContainer } from './support.js';

describe('the image, run with the chart\'s security settings', () => {
  let db: Awaited<ReturnType<typeof createEmptyDatabase>>;
  let service: ServiceContainer | undefined;
  before(async () => { db = await createEmptyDatabase(); });
  after(async () => {
    service?.remove();
    await db.drop();
  });

  it('migrates an empty database with dist/service/migrate.js and exits 0', async () => {
    const result = runOnce({ DATABASE_URL: db.url }, ['dist/service/migrate.js']);
    expect(result.code, result.stderr).to.equal(0);
    expect(await db.tables()).to.include('users');
  });

  describe('once migrated and started', () => {
    // Migrated here too (nothing to do after the test above), so each test below also passes alone.
    before(async () => {
      const migrated = runOnce({ DATABASE_URL: db.url }, ['dist/service/migrate.js']);
      expect(migrated.code, migrated.stderr).to.equal(0);
      service = await startService({ DATABASE_URL: db.url });
    });

    it('serves: /health and /ready answer 200', async () => {
      expect((await send(service!.port, { path: '/health' })).status).to.equal(200);
      const ready = await send(service!.port, { path: '/ready' });
      expect(ready.status, ready.text).to.equal(200);
    });

    it('creates a user and reads it back', async () => {
      const port = service!.port;
      const created = await postUser(port, { name: 'Container', email: 'container@example.com' });
      expect(created.status, created.text).to.equal(201);
      const location = created.headers.location ?? '';
      expect(location).to.match(/^\/api\/users\/\d+$/);
      const fetched = await send(port, { path: location });
      expect(fetched.status).to.equal(200);
      expect(json(fetched)).to.deep.equal(json(created));
    });
  });
});

describe('a bad environment variable', () => {
  it('makes the container exit 1 with the one-line configuration error', () => {
    const result = runOnce({ SHUTDOWN_TIMEOUT: 'soon' });
    expect(result.code).to.equal(1);
    expect(result.stderr.trim().split('\n')).to.deep.equal(['users-service: configuration error: SHUTDOWN_TIMEOUT="soon" is invalid: expected a duration with a unit, like 300ms, 5s or 5m']);
    expect(result.stdout).to.equal('');
  });
});
