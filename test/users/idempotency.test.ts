import { expect } from 'chai';
import { Registry } from 'prom-client';
import { createMetrics } from '../../service/observability/metrics.js';
import { KnexUsersRepository } from '../../service/users/knex-repository.js';
import { TRACING_OFF } from '../../service/observability/tracing.js';
import { UsersService } from '../../service/users/users-service.js';
import { BACKENDS, useTestApp } from '../support/app.js';
import { postJson } from '../support/spec.js';
import { fieldsOf, problemType, uniqueEmail, usersClient, type UserBody } from './client.js';

let keySeq = 0;
const newKey = () => `key-${process.pid}-${Date.now()}-${++keySeq}`;

for (const backend of BACKENDS) {
  describe(`POST /api/users with Idempotency-Key (${backend})`, () => {
    const suite = useTestApp({ IDEMPOTENCY_KEY_TTL: '90m' }, backend);
    const api = usersClient(() => suite.app.baseUrl);
    const knex = () => suite.app.database.knex;
    const rowsWithEmail = async (email: string) => Number((await knex()('users').where({ email }).count({ n: '*' }).first<{ n: string }>()).n);

    it('creates once, and replays the stored response (status, body, Location, ETag) to a retry', async () => {
      const key = newKey();
      const body = { name: 'Once', email: uniqueEmail() };
      const first = await api.create(body, key);
      expect(first.status).to.equal(201);
      expect(first.headers.get('idempotent-replayed')).to.equal(null);
      const retry = await api.create(body, key);
      expect(retry.status).to.equal(201);
      expect(retry.headers.get('idempotent-replayed')).to.equal('true');
      expect(retry.body).to.deep.equal(first.body);
      expect(retry.headers.get('location')).to.equal(first.headers.get('location'));
      expect(retry.headers.get('etag')).to.equal(first.headers.get('etag'));
      expect(await rowsWithEmail(body.email)).to.equal(1);
    });

    it('treats a retry that differs only in what creation normalises as the same request', async () => {
      const key = newKey();
      const email = uniqueEmail();
      const first = await api.create({ name: 'Same', email }, key);
      const retry = await api.create({ name: '  Same ', email: ` ${email.toUpperCase()}` }, key);
      expect(retry.status).to.equal(201);
      expect(retry.body).to.deep.equal(first.body);
    });

    it('answers 422 to the same key with a different body, and creates nothing', async () => {
      const key = newKey();
      await api.create({ name: 'Original', email: uniqueEmail() }, key);
      const other = uniqueEmail();
      const res = await api.create({ name: 'Different', email: other }, key);
      expect(res.status).to.equal(422);
      expect(problemType(res)).to.equal('idempotency-key-reused');
      expect(await rowsWithEmail(other)).to.equal(0);
    });

    it('creates exactly one user from 20 concurrent requests with one key', async () => {
      const key = newKey();
      const body = { name: 'Concurrent', email: uniqueEmail() };
      const results = await Promise.all(Array.from({ length: 20 }, () => api.create(body, key)));
      const fresh = results.filter((r) => r.status === 201 && r.headers.get('idempotent-replayed') === null);
      const replays = results.filter((r) => r.headers.get('idempotent-replayed') === 'true');
      const inProgress = results.filter((r) => r.status === 409);
      console.log(`      same key × 20 (${backend}): ${fresh.length} created, ${replays.length} replayed, ${inProgress.length} × 409 in progress`);
      expect(fresh).to.have.length(1);
      expect(fresh.length + replays.length + inProgress.length).to.equal(20);
      for (const res of inProgress) expect(problemType(res)).to.equal('idempotency-request-in-progress');
      for (const res of replays) expect(res.body).to.deep.equal(fresh[0]?.body);
      expect(await rowsWithEmail(body.email)).to.equal(1);
    });

    it('stores nothing for a refused request, so the key can be used again once the body is fixed', async () => {
      const key = newKey();
      const bad = await api.create({ name: '', email: uniqueEmail() }, key);
      expect(bad.status).to.equal(400);
      const taken = (await api.create({ name: 'Owner', email: uniqueEmail() })).body as UserBody;
      const duplicate = await api.create({ name: 'Dup', email: taken.email }, key);
      expect(duplicate.status).to.equal(409);
      expect(problemType(duplicate)).to.equal('duplicate-email');
      expect((await api.create({ name: 'Fixed', email: uniqueEmail() }, key)).status).to.equal(201);
    });

    it('takes a bare key (no quotes, no spaces) as the same key as its quoted form', async () => {
      const key = newKey();
      const body = { name: 'Bare', email: uniqueEmail() };
      expect((await postJson(api.users(), body, { 'idempotency-key': key })).status).to.equal(201);
      const retry = await api.create(body, key);
      expect(retry.headers.get('idempotent-replayed')).to.equal('true');
    });

    it('answers 400 for a key that is not a structured-field string of 1–255 characters', async () => {
      for (const value of ['bare token', '""', `"${'k'.repeat(256)}"`, '"tab\there"', '"a", "b"']) {
        const res = await postJson(api.users(), { name: 'Badkey', email: uniqueEmail() }, { 'idempotency-key': value });
        expect(res.status, value).to.equal(400);
        expect(fieldsOf(res), value).to.deep.equal(['Idempotency-Key']);
      }
    });

    it('scopes the key to the client (anonymous without authentication)', async () => {
      const key = newKey();
      const email = uniqueEmail();
      await api.create({ name: 'Scoped', email }, key);
      const row = await knex()('idempotency_keys').where({ key }).first<{ client_id: string }>();
      expect(row.client_id).to.equal('anonymous');
    });

    it('lets two clients use the same key for different users', async () => {
      const service = new UsersService(new KnexUsersRepository(knex(), createMetrics(new Registry()).dbQueryDuration, TRACING_OFF), { idempotencyKeyTtlMs: 60_000 });
      const key = newKey();
      const respond = ({ user }: { user: UserBody }) => ({ status: 201, location: `/api/users/${user.id}`, etag: '"1"', body: user });
      const a = await service.createIdempotently({ name: 'Client A', email: uniqueEmail() }, { key: { clientId: 'client-a', key }, respond });
      const b = await service.createIdempotently({ name: 'Client B', email: uniqueEmail() }, { key: { clientId: 'client-b', key }, respond });
      expect('created' in a && 'created' in b).to.be.true;
      const stored = await knex()('idempotency_keys').where({ key }).orderBy('client_id').select<{ client_id: string; user_id: number }[]>('client_id', 'user_id');
      expect(stored.map((r) => r.client_id)).to.deep.equal(['client-a', 'client-b']);
      expect(new Set(stored.map((r) => r.user_id)).size).to.equal(2);
    });

    it('keeps a key for IDEMPOTENCY_KEY_TTL', async () => {
      const key = newKey();
      await api.create({ name: 'Ttl', email: uniqueEmail() }, key);
      const { rows } = await knex().raw<{ rows: { ttl: string }[] }>(
        `SELECT extract(epoch FROM expires_at - created_at)::int::text AS ttl FROM idempotency_keys WHERE key = ?`,
        [key],
      );
      expect(rows[0]?.ttl).to.equal(String(90 * 60));
    });

    it('runs a request again once its key has expired', async () => {
      const key = newKey();
      await api.create({ name: 'Expiring', email: uniqueEmail() }, key);
      await knex()('idempotency_keys').where({ key }).update({ expires_at: knex().raw(`now() - interval '1 second'`) });
      const res = await api.create({ name: 'After expiry', email: uniqueEmail() }, key);
      expect(res.status).to.equal(201);
      expect(res.headers.get('idempotent-replayed')).to.equal(null);
    });

    it('purges expired keys and keeps live ones', async () => {
      const live = newKey();
      await api.create({ name: 'Live', email: uniqueEmail() }, live);
      const expired = Array.from({ length: 3 }, newKey);
      for (const key of expired) await api.create({ name: 'Expired', email: uniqueEmail() }, key);
      await knex()('idempotency_keys').whereIn('key', expired).update({ expires_at: knex().raw(`now() - interval '1 second'`) });
      const repository = new KnexUsersRepository(knex(), createMetrics(new Registry()).dbQueryDuration, TRACING_OFF);
      let purged = 0;
      for (let n = await repository.purgeExpiredKeys(2); n > 0; n = await repository.purgeExpiredKeys(2)) purged += n;
      expect(purged).to.equal(3);
      expect(await knex()('idempotency_keys').whereIn('key', [live, ...expired]).pluck('key')).to.deep.equal([live]);
    });

    if (backend === 'postgres') {
      it('answers 409 while the first request with the key is in progress, and inserts nothing', async () => {
        const key = newKey();
        const email = uniqueEmail();
        // Another session holds the key's lock, as the first request's transaction does until it commits.
        const first = await suite.db.knex.transaction();
        try {
          await first.raw('SELECT pg_advisory_xact_lock(hashtext(?), hashtext(?))', ['anonymous', key]);
          const res = await api.create({ name: 'Impatient', email }, key);
          expect(res.status).to.equal(409);
          expect(problemType(res)).to.equal('idempotency-request-in-progress');
          expect(await rowsWithEmail(email)).to.equal(0);
        } finally {
          await first.rollback();
        }
        expect((await api.create({ name: 'Impatient', email }, key)).status).to.equal(201);
      });

      it('purges without waiting for a key a request holds', async () => {
        const [held, free] = [newKey(), newKey()];
        for (const key of [held, free]) await api.create({ name: 'Purgeable', email: uniqueEmail() }, key);
        await knex()('idempotency_keys').whereIn('key', [held, free]).update({ expires_at: knex().raw(`now() - interval '1 second'`) });
        const holder = await suite.db.knex.transaction();
        try {
          await holder.raw('SELECT 1 FROM idempotency_keys WHERE key = ? FOR UPDATE', [held]);
          const repository = new KnexUsersRepository(knex(), createMetrics(new Registry()).dbQueryDuration, TRACING_OFF);
          expect(await repository.purgeExpiredKeys(100)).to.equal(1);
        } finally {
          await holder.rollback();
        }
        expect(await knex()('idempotency_keys').whereIn('key', [held, free]).pluck('key')).to.deep.equal([held]);
      });
    }
  });
}
