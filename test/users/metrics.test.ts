import { expect } from 'chai';
import { useTestApp } from '../support/app.js';
import { uniqueEmail, usersClient, type UserBody } from './client.js';

describe('users metrics: updates, erasures, idempotent replays, purged keys', () => {
  const suite = useTestApp({ IDEMPOTENCY_PURGE_INTERVAL: '50ms' });
  const api = usersClient(() => suite.app.baseUrl);
  const value = async (name: string) => {
    const metric = suite.app.metrics.registry.getSingleMetric(name);
    if (!metric) throw new Error(`no metric ${name}`);
    return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
  };
  const created = async () => {
    const res = await api.create({ name: 'Counted', email: uniqueEmail() });
    return { id: (res.body as UserBody).id, etag: res.headers.get('etag') ?? '' };
  };

  it('counts a successful PATCH as an update, and a refused one not', async () => {
    const { id, etag } = await created();
    const before = await value('users_updated_total');
    await api.patch(id, { name: 'Renamed' }, { 'if-match': etag });
    await api.patch(id, { name: 'Stale' }, { 'if-match': etag });
    expect(await value('users_updated_total')).to.equal(before + 1);
  });

  it('does not count a PATCH to a taken e-mail as a create conflict', async () => {
    const taken = await api.create({ name: 'Taken', email: uniqueEmail() });
    const { id, etag } = await created();
    const before = await value('users_create_conflicts_total');
    const res = await api.patch(id, { email: (taken.body as UserBody).email }, { 'if-match': etag });
    expect(res.status).to.equal(409);
    expect(await value('users_create_conflicts_total')).to.equal(before);
  });

  it('counts an erasure once, and a DELETE of nobody not', async () => {
    const { id } = await created();
    const before = await value('users_erased_total');
    await api.erase(id);
    await api.erase(id);
    expect(await value('users_erased_total')).to.equal(before + 1);
  });

  it('counts each replayed response, not the first creation', async () => {
    const body = { name: 'Replayed', email: uniqueEmail() };
    const [createdBefore, replaysBefore] = [await value('users_created_total'), await value('users_idempotent_replays_total')];
    for (let i = 0; i < 3; i++) await api.create(body, `metrics-${body.email}`);
    expect(await value('users_created_total')).to.equal(createdBefore + 1);
    expect(await value('users_idempotent_replays_total')).to.equal(replaysBefore + 2);
  });

  it('purges expired keys in the background and counts them', async () => {
    const before = await value('idempotency_keys_purged_total');
    const key = `purge-${uniqueEmail()}`;
    await api.create({ name: 'Expires', email: uniqueEmail() }, key);
    await suite.db.knex('idempotency_keys').where({ key }).update({ expires_at: suite.db.knex.raw(`now() - interval '1 second'`) });
    while ((await value('idempotency_keys_purged_total')) < before + 1) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await suite.db.knex('idempotency_keys').where({ key }).first()).to.equal(undefined);
  });
});
