import { expect } from 'chai';
import { BACKENDS, useTestApp } from '../support/app.js';
import { call } from '../support/spec.js';
import { fieldsOf, problemType, uniqueEmail, usersClient, type UserBody } from './client.js';

for (const backend of BACKENDS) {
  describe(`PATCH /api/users/{id} and ETags (${backend})`, () => {
    const suite = useTestApp({}, backend);
    const api = usersClient(() => suite.app.baseUrl);
    const newUser = async (name = 'Ada Lovelace') => {
      const res = await api.create({ name, email: uniqueEmail() });
      return { user: res.body as UserBody, etag: res.headers.get('etag') ?? '' };
    };

    describe('conditional reads', () => {
      it('gives every representation a strong ETag, the same on creation and on GET', async () => {
        const { user, etag } = await newUser();
        expect(etag).to.match(/^"\d+"$/);
        const got = await api.get(user.id);
        expect(got.headers.get('etag')).to.equal(etag);
      });

      it('answers GET with If-None-Match of the current ETag with 304, the ETag and no body', async () => {
        const { user, etag } = await newUser();
        const res = await api.get(user.id, { 'if-none-match': etag });
        expect(res.status).to.equal(304);
        expect(res.headers.get('etag')).to.equal(etag);
        expect(res.body).to.equal('');
      });

      it('answers GET with 200 when If-None-Match names an older version, or only other tags', async () => {
        const { user, etag } = await newUser();
        await api.patch(user.id, { name: 'Changed' }, { 'if-match': etag });
        for (const header of [etag, '"nope", W/"other"']) {
          const res = await api.get(user.id, { 'if-none-match': header });
          expect(res.status, header).to.equal(200);
          expect((res.body as UserBody).name).to.equal('Changed');
        }
      });
    });

    describe('successful patches', () => {
      it('changes the name and answers 200 with the user and a new ETag', async () => {
        const { user, etag } = await newUser();
        const res = await api.patch(user.id, { name: '  Ada King  ' }, { 'if-match': etag });
        expect(res.status).to.equal(200);
        const updated = res.body as UserBody;
        expect(updated).to.include({ id: user.id, name: 'Ada King', email: user.email, created_at: user.created_at });
        expect(res.headers.get('etag')).to.match(/^"\d+"$/).and.not.equal(etag);
        expect((await api.get(user.id)).body).to.deep.equal(updated);
      });

      it('changes the e-mail, trimmed and lower-cased, and frees the old one', async () => {
        const { user, etag } = await newUser();
        const email = uniqueEmail();
        const res = await api.patch(user.id, { email: `  ${email.toUpperCase()} ` }, { 'if-match': etag });
        expect(res.status).to.equal(200);
        expect((res.body as UserBody).email).to.equal(email);
        expect((await api.create({ name: 'Reuser', email: user.email })).status).to.equal(201);
      });

      it('moves updated_at forward and keeps created_at', async () => {
        const { user, etag } = await newUser();
        const updated = (await api.patch(user.id, { name: 'Later' }, { 'if-match': etag })).body as UserBody;
        expect(updated.created_at).to.equal(user.created_at);
        expect(Date.parse(updated.updated_at)).to.be.at.least(Date.parse(user.updated_at));
      });

      it('accepts If-Match: * and a list that contains the current ETag', async () => {
        const { user, etag } = await newUser();
        const first = await api.patch(user.id, { name: 'Star' }, { 'if-match': '*' });
        expect(first.status).to.equal(200);
        const second = await api.patch(user.id, { name: 'Listed' }, { 'if-match': `${etag}, ${first.headers.get('etag') ?? ''}` });
        expect(second.status).to.equal(200);
      });

      it('answers an empty patch with the user unchanged, keeping its ETag', async () => {
        const { user, etag } = await newUser();
        const res = await api.patch(user.id, {}, { 'if-match': etag });
        expect(res.status).to.equal(200);
        expect(res.body).to.deep.equal(user);
        expect(res.headers.get('etag')).to.equal(etag);
      });
    });

    describe('refused patches', () => {
      it('answers 428 without If-Match, and changes nothing', async () => {
        const { user } = await newUser();
        const res = await api.patch(user.id, { name: 'Blind write' });
        expect(res.status).to.equal(428);
        expect(problemType(res)).to.equal('precondition-required');
        expect((await api.get(user.id)).body).to.deep.equal(user);
      });

      it('answers 412 with a stale ETag, and changes nothing', async () => {
        const { user, etag } = await newUser();
        const current = (await api.patch(user.id, { name: 'First' }, { 'if-match': etag })).body as UserBody;
        const res = await api.patch(user.id, { name: 'Lost update' }, { 'if-match': etag });
        expect(res.status).to.equal(412);
        expect(problemType(res)).to.equal('precondition-failed');
        expect((await api.get(user.id)).body).to.deep.equal(current);
      });

      it('answers 412 for a weak or malformed If-Match, as strong comparison requires', async () => {
        const { user, etag } = await newUser();
        for (const header of [`W/${etag}`, etag.slice(1, -1), `${etag} ${etag}`]) {
          const res = await api.patch(user.id, { name: 'Weak' }, { 'if-match': header });
          expect(res.status, header).to.equal(412);
        }
      });

      it('answers 404 for a user that does not exist', async () => {
        const res = await api.patch(2147483647, { name: 'Nobody' }, { 'if-match': '"1"' });
        expect(res.status).to.equal(404);
      });

      it('answers 409 when the e-mail belongs to another user, whatever its case', async () => {
        const { user: other } = await newUser('Other');
        const { user, etag } = await newUser();
        const res = await api.patch(user.id, { email: other.email.toUpperCase() }, { 'if-match': etag });
        expect(res.status).to.equal(409);
        expect(problemType(res)).to.equal('duplicate-email');
        expect((await api.get(user.id)).body).to.deep.equal(user);
      });

      it('answers 400 naming each unknown member', async () => {
        const { user, etag } = await newUser();
        const res = await api.patch(user.id, { name: 'Ok', admin: true, id: 7 }, { 'if-match': etag });
        expect(res.status).to.equal(400);
        expect(fieldsOf(res)).to.deep.equal(['admin', 'id']);
      });

      it('answers 400 for null, which would remove a required member', async () => {
        const { user, etag } = await newUser();
        const res = await api.patch(user.id, { name: null, email: null }, { 'if-match': etag });
        expect(res.status).to.equal(400);
        expect(fieldsOf(res)).to.deep.equal(['email', 'name']);
      });

      it('applies the creation rules to each member', async () => {
        const { user, etag } = await newUser();
        for (const [body, expected] of [
          [{ name: '' }, ['name']],
          [{ name: '   ' }, ['name']],
          [{ name: 'x'.repeat(101) }, ['name']],
          [{ name: 'a\u0000b' }, ['name']],
          [{ email: 'not-an-email' }, ['email']],
          [{ email: `${'a'.repeat(250)}@example.com` }, ['email']],
          [{ name: 42, email: ['x'] }, ['email', 'name']],
        ] as const) {
          const res = await api.patch(user.id, body, { 'if-match': etag });
          expect(res.status, JSON.stringify(body)).to.equal(400);
          expect(fieldsOf(res), JSON.stringify(body)).to.deep.equal(expected);
        }
        expect((await api.get(user.id)).body).to.deep.equal(user);
      });

      it('answers 400 for a patch that is not an object, or not JSON', async () => {
        const { user, etag } = await newUser();
        for (const body of ['"just a string"', '[1]', 'null', '{"name": ']) {
          const res = await api.patch(user.id, body, { 'if-match': etag });
          expect(res.status, body).to.equal(400);
        }
      });

      it('answers 415 with Accept-Patch for any other media type, application/json included', async () => {
        const { user, etag } = await newUser();
        for (const type of ['application/json', 'application/json-patch+json', 'text/plain']) {
          const res = await call(`${api.users()}/${user.id}`, {
            method: 'PATCH',
            headers: { 'content-type': type, 'if-match': etag },
            body: JSON.stringify({ name: 'Wrong type' }),
          });
          expect(res.status, type).to.equal(415);
          expect(res.headers.get('accept-patch'), type).to.equal('application/merge-patch+json');
        }
      });

      it('answers 413 for a patch over 16 KiB', async () => {
        const { user, etag } = await newUser();
        const res = await api.patch(user.id, { name: 'x', pad: 'p'.repeat(17 * 1024) }, { 'if-match': etag });
        expect(res.status).to.equal(413);
      });
    });

    describe('racing writers', () => {
      it('lets exactly one of 50 concurrent PATCHes from the same ETag win; the others get 412', async () => {
        const { user, etag } = await newUser();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => api.patch(user.id, { name: `Writer ${i}` }, { 'if-match': etag })),
        );
        const statuses = results.map((r) => r.status);
        const winners = results.filter((r) => r.status === 200);
        console.log(`      race (${backend}): ${winners.length} × 200, ${statuses.filter((s) => s === 412).length} × 412 of ${statuses.length}`);
        expect(winners).to.have.length(1);
        expect(statuses.filter((s) => s === 412)).to.have.length(49);
        const row = await suite.app.database.knex('users').where({ id: user.id }).first<{ name: string; version: number }>();
        expect(row.name).to.equal((winners[0]?.body as UserBody).name);
        expect(row.version).to.equal(2);
      });
    });
  });
}
