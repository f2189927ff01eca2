import { expect } from 'chai';
import { useTestApp } from '../support/app.js';
import { call, expectMatchesSpec, postJson, type ApiResponse } from '../support/spec.js';

interface UserBody {
  id: number;
  name: string;
  email: string;
  created_at: string;
  updated_at: string;
}
interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: { field: string; message: string }[];
}

let seq = 0;
const uniqueEmail = () => `user${++seq}.${Date.now()}@example.com`;
const fields = (res: ApiResponse) => ((res.body as ProblemBody).errors ?? []).map((e) => e.field).sort();

describe('the users API', () => {
  const suite = useTestApp();
  const users = () => `${suite.app.baseUrl}/api/users`;

  describe('POST /api/users', () => {
    it('creates a user and answers 201 with its Location', async () => {
      const res = await postJson(users(), { name: 'Ada Lovelace', email: 'ada@example.com' });
      expect(res.status).to.equal(201);
      expectMatchesSpec(res, 'createUser');
      const user = res.body as UserBody;
      expect(user).to.include({ name: 'Ada Lovelace', email: 'ada@example.com' });
      expect(res.headers.get('location')).to.equal(`/api/users/${user.id}`);
    });

    it('stores the e-mail trimmed and lower-cased', async () => {
      const res = await postJson(users(), { name: 'Alice', email: '  Alice@Example.COM ' });
      expect(res.status).to.equal(201);
      expect((res.body as UserBody).email).to.equal('alice@example.com');
      const row = (await suite.db.knex('users').where({ id: (res.body as UserBody).id }).first()) as UserBody;
      expect(row.email).to.equal('alice@example.com');
    });

    it('answers 409 when the e-mail is taken, whatever its case', async () => {
      await postJson(users(), { name: 'Bob', email: 'bob@example.com' });
      const res = await postJson(users(), { name: 'Bobby', email: 'BOB@example.com' });
      expect(res.status).to.equal(409);
      expectMatchesSpec(res, 'createUser');
      expect((res.body as ProblemBody).type).to.match(/#duplicate-email$/);
    });

    it('lets exactly one of 50 concurrent creations with one e-mail win', async () => {
      const email = uniqueEmail();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => postJson(users(), { name: `Racer ${i}`, email })),
      );
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).to.have.length(1);
      expect(statuses.filter((s) => s === 409)).to.have.length(49);
      const [{ count }] = (await suite.db.knex('users').where({ email }).count({ count: '*' })) as [{ count: string }];
      expect(Number(count)).to.equal(1);
    });

    it('lists every missing field in one 400', async () => {
      const res = await postJson(users(), {});
      expect(res.status).to.equal(400);
      expectMatchesSpec(res, 'createUser');
      expect(fields(res)).to.deep.equal(['email', 'name']);
    });

    it('refuses unknown fields', async () => {
      const res = await postJson(users(), { name: 'Eve', email: uniqueEmail(), admin: true });
      expect(res.status).to.equal(400);
      expect(fields(res)).to.deep.equal(['admin']);
    });

    it('refuses an empty name, a name over 100 characters, and a bad e-mail, field by field', async () => {
      for (const [body, expected] of [
        [{ name: '', email: uniqueEmail() }, ['name']],
        [{ name: '   ', email: uniqueEmail() }, ['name']],
        [{ name: 'x'.repeat(101), email: uniqueEmail() }, ['name']],
        [{ name: 'Ok', email: 'not-an-email' }, ['email']],
        [{ name: 'Ok', email: `${'a'.repeat(250)}@example.com` }, ['email']],
        [{ name: 42, email: ['x'] }, ['email', 'name']],
      ] as const) {
        const res = await postJson(users(), body);
        expect(res.status, JSON.stringify(body)).to.equal(400);
        expect(fields(res), JSON.stringify(body)).to.deep.equal(expected);
      }
    });

    it('accepts a name of exactly 100 characters', async () => {
      const res = await postJson(users(), { name: 'n'.repeat(100), email: uniqueEmail() });
      expect(res.status).to.equal(201);
    });

    it('answers 400 for malformed JSON', async () => {
      const res = await postJson(users(), '{"name": "x", ');
      expect(res.status).to.equal(400);
      expectMatchesSpec(res, 'createUser');
      expect((res.body as ProblemBody).type).to.match(/#malformed-json$/);
    });

    it('answers 400 when the body is JSON but not an object', async () => {
      const res = await postJson(users(), '[1, 2]');
      expect(res.status).to.equal(400);
    });

    it('answers 415 for a body that is not JSON', async () => {
      const res = await call(users(), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'name=x' });
      expect(res.status).to.equal(415);
      expectMatchesSpec(res, 'createUser');
    });

    it('answers 413 for a body over 16 KiB', async () => {
      const res = await postJson(users(), { name: 'x', email: uniqueEmail(), pad: 'p'.repeat(17 * 1024) });
      expect(res.status).to.equal(413);
      expectMatchesSpec(res, 'createUser');
    });

    it('stores SQL-looking text verbatim', async () => {
      const name = "Robert'); DROP TABLE users;--";
      const res = await postJson(users(), { name, email: uniqueEmail() });
      expect(res.status).to.equal(201);
      const got = await call(`${users()}/${(res.body as UserBody).id}`);
      expect((got.body as UserBody).name).to.equal(name);
    });
  });

  describe('GET /api/users/{id}', () => {
    it('returns the user', async () => {
      const created = (await postJson(users(), { name: 'Grace', email: uniqueEmail() })).body as UserBody;
      const res = await call(`${users()}/${created.id}`);
      expect(res.status).to.equal(200);
      expectMatchesSpec(res, 'getUser');
      expect(res.body).to.deep.equal(created);
    });

    it('answers 404 for an id nobody has', async () => {
      const res = await call(`${users()}/2147483647`);
      expect(res.status).to.equal(404);
      expectMatchesSpec(res, 'getUser');
    });

    for (const id of ['abc', '0', '-1', '99999999999', '1.5', '1e3', '%20']) {
      it(`answers 400 for the id ${JSON.stringify(id)}`, async () => {
        const res = await call(`${users()}/${id}`);
        expect(res.status).to.equal(400);
        expectMatchesSpec(res, 'getUser');
        expect(fields(res)).to.deep.equal(['id']);
      });
    }
  });

  describe('GET /api/users', () => {
    it('pages through every user exactly once, in id order', async () => {
      for (let i = 0; i < 7; i++) await postJson(users(), { name: `Pager ${i}`, email: uniqueEmail() });
      const [{ count }] = (await suite.db.knex('users').count({ count: '*' })) as [{ count: string }];
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const res = await call(`${users()}?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.status).to.equal(200);
        expectMatchesSpec(res, 'listUsers');
        const page = res.body as { items: UserBody[]; next_cursor: string | null };
        expect(page.items.length).to.be.at.most(3);
        seen.push(...page.items.map((u) => u.id));
        cursor = page.next_cursor;
      } while (cursor);
      expect(seen).to.have.length(Number(count));
      expect(seen).to.deep.equal([...seen].sort((a, b) => a - b));
      expect(new Set(seen).size).to.equal(seen.length);
    });

    it('returns 20 users by default', async () => {
      for (let i = 0; i < 21; i++) await postJson(users(), { name: `Bulk ${i}`, email: uniqueEmail() });
      const res = await call(users());
      expect((res.body as { items: unknown[] }).items).to.have.length(20);
    });

    for (const query of ['limit=0', 'limit=101', 'limit=abc', 'limit=1&limit=2', 'cursor=', 'cursor=not-ours', 'cursor=%00%01']) {
      it(`answers 400 for ?${query}`, async () => {
        const res = await call(`${users()}?${query}`);
        expect(res.status).to.equal(400);
        expectMatchesSpec(res, 'listUsers');
      });
    }
  });

  describe('errors', () => {
    it('answers an unknown path with a problem+json 404', async () => {
      const res = await call(`${suite.app.baseUrl}/nope/${Math.random()}`);
      expect(res.status).to.equal(404);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      const problem = res.body as ProblemBody;
      expect(problem.status).to.equal(404);
      expect(problem.instance).to.match(/^\/nope\//);
      expect(problem.title).to.be.a('string').and.not.be.empty;
    });

    it('answers a wrong method with 405 and Allow', async () => {
      const res = await call(`${users()}/1`, { method: 'PUT' });
      expect(res.status).to.equal(405);
      expect(res.headers.get('allow')).to.include('GET');
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    });

    it('answers a method the router does not know with 405, not 501', async () => {
      const res = await call(users(), { method: 'PROPFIND' });
      expect(res.status).to.equal(405);
    });
  });
});
