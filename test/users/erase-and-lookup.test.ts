import { expect } from 'chai';
import { BACKENDS, useTestApp } from '../support/app.js';
import { fieldsOf, problemType, uniqueEmail, usersClient, type UserBody } from './client.js';

for (const backend of BACKENDS) {
  describe(`DELETE /api/users/{id} and lookup by e-mail (${backend})`, () => {
    const suite = useTestApp({ LOG_LEVEL: 'trace' }, backend);
    const api = usersClient(() => suite.app.baseUrl);
    const knex = () => suite.app.database.knex;
    const newUser = async (name: string, email = uniqueEmail(), key?: string) => {
      const res = await api.create({ name, email }, key);
      expect(res.status).to.equal(201);
      return { user: res.body as UserBody, etag: res.headers.get('etag') ?? '' };
    };

    describe('erasure', () => {
      it('answers 204, after which every read and write of the user is 404', async () => {
        const { user } = await newUser('Gone Soon');
        const res = await api.erase(user.id);
        expect(res.status).to.equal(204);
        expect(res.body).to.equal('');
        expect((await api.get(user.id)).status).to.equal(404);
        expect((await api.patch(user.id, { name: 'x' }, { 'if-match': '*' })).status).to.equal(404);
        expect((await api.erase(user.id)).status).to.equal(404);
        expect((await api.lookup(`email=${encodeURIComponent(user.email)}`)).body).to.deep.equal({ items: [], next_cursor: null });
      });

      it('answers 404 for a user that never existed', async () => {
        const res = await api.erase(2147483647);
        expect(res.status).to.equal(404);
        expect(problemType(res)).to.equal('not-found');
      });

      it('lets the e-mail be registered again', async () => {
        const { user } = await newUser('First Owner');
        await api.erase(user.id);
        const again = await api.create({ name: 'Second Owner', email: user.email.toUpperCase() });
        expect(again.status).to.equal(201);
        expect((again.body as UserBody).id).to.not.equal(user.id);
      });

      it('leaves nothing of the person in the users table', async () => {
        const name = `Erasable ${Date.now()}`;
        const { user } = await newUser(name);
        await api.erase(user.id);
        const rows = (await knex().raw<{ rows: { row: string }[] }>('SELECT u::text AS row FROM users u')).rows.map((r) => r.row);
        expect(rows.filter((row) => row.includes(name) || row.includes(user.email) || row.startsWith(`(${user.id},`))).to.deep.equal([]);
      });

      it('removes the person from stored idempotent responses, and a retry with that key is 410', async () => {
        const name = `Keyed Erasable ${Date.now()}`;
        const email = uniqueEmail();
        const key = `erase-${Date.now()}`;
        const { user } = await newUser(name, email, key);
        await api.erase(user.id);
        const stored = (await knex().raw<{ rows: { row: string }[] }>('SELECT k::text AS row FROM idempotency_keys k')).rows.map((r) => r.row);
        expect(stored.filter((row) => row.includes(name) || row.includes(email))).to.deep.equal([]);
        const retry = await api.create({ name, email }, key);
        expect(retry.status).to.equal(410);
        expect(problemType(retry)).to.equal('idempotency-key-erased');
        expect((await api.lookup(`email=${encodeURIComponent(email)}`)).body).to.deep.equal({ items: [], next_cursor: null });
      });

      it('writes no log line with the name or e-mail of the person, even at trace level', async () => {
        const name = `Logless ${Date.now()}`;
        const { user, etag } = await newUser(name);
        const from = suite.app.logs.length;
        expect((await api.erase(user.id, { 'if-match': etag })).status).to.equal(204);
        const lines = suite.app.logs.slice(from);
        expect(lines.some((line) => line.method === 'DELETE' && line.status === 204), 'the access line').to.be.true;
        const text = JSON.stringify(lines);
        expect(text).to.not.include(name);
        expect(text).to.not.include(user.email);
      });

      it('answers 412 when If-Match is stale, and keeps the user', async () => {
        const { user, etag } = await newUser('Guarded');
        const changed = await api.patch(user.id, { name: 'Guarded, changed' }, { 'if-match': etag });
        const res = await api.erase(user.id, { 'if-match': etag });
        expect(res.status).to.equal(412);
        expect(problemType(res)).to.equal('precondition-failed');
        expect((await api.get(user.id)).body).to.deep.equal(changed.body);
      });

      it('erases when If-Match is current or *', async () => {
        const { user: a, etag } = await newUser('Current');
        expect((await api.erase(a.id, { 'if-match': etag })).status).to.equal(204);
        const { user: b } = await newUser('Any');
        expect((await api.erase(b.id, { 'if-match': '*' })).status).to.equal(204);
      });

      it('answers 400 for an id that is not one', async () => {
        const res = await api.erase(0);
        expect(res.status).to.equal(400);
        expect(fieldsOf(res)).to.deep.equal(['id']);
      });
    });

    describe('GET /api/users?email=', () => {
      it('finds the user whatever the case of the address, in the list shape', async () => {
        const { user } = await newUser('Findable');
        const res = await api.lookup(`email=${encodeURIComponent(user.email.toUpperCase())}`);
        expect(res.status).to.equal(200);
        expect(res.body).to.deep.equal({ items: [user], next_cursor: null });
      });

      it('answers an empty list for an address nobody has', async () => {
        const res = await api.lookup(`email=${encodeURIComponent(uniqueEmail())}`);
        expect(res.status).to.equal(200);
        expect(res.body).to.deep.equal({ items: [], next_cursor: null });
      });

      it('matches exactly, not by prefix or pattern', async () => {
        const { user } = await newUser('Exact');
        for (const probe of [user.email.slice(0, -1), `%${user.email.slice(1)}`, user.email.replace('@', '_@').replace('_@', '@x')]) {
          const res = await api.lookup(`email=${encodeURIComponent(probe)}`);
          if (res.status === 200) expect((res.body as { items: unknown[] }).items, probe).to.deep.equal([]);
          else expect(res.status, probe).to.equal(400);
        }
      });

      it('answers 400 when combined with a cursor', async () => {
        const { user } = await newUser('Cursorless');
        const page = (await api.lookup('limit=1')).body as { next_cursor: string | null };
        const res = await api.lookup(`email=${encodeURIComponent(user.email)}&cursor=${page.next_cursor ?? 'djE6MQ'}`);
        expect(res.status).to.equal(400);
        expect(fieldsOf(res)).to.deep.equal(['cursor']);
      });

      it('answers 400 for something that is not an e-mail address', async () => {
        const res = await api.lookup('email=not-an-address');
        expect(res.status).to.equal(400);
        expect(fieldsOf(res)).to.deep.equal(['email']);
      });

      if (backend === 'postgres') {
        it('is answered by an index on users.email, not a scan', async () => {
          await knex().raw(`INSERT INTO users (name, email) SELECT 'Bulk ' || g, 'bulk' || g || '@example.com' FROM generate_series(1, 5000) g`);
          await knex().raw('ANALYZE users');
          const plan = (await knex().raw<{ rows: { 'QUERY PLAN': string }[] }>(`EXPLAIN SELECT * FROM users WHERE email = 'bulk42@example.com'`)).rows
            .map((r) => r['QUERY PLAN'])
            .join('\n');
          expect(plan).to.match(/Index (Only )?Scan using (users_email_key|idx_users_email)/);
        });
      }
    });
  });
}
