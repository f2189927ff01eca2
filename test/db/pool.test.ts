import { expect } from 'chai';
import { useTestApp } from '../support/app.js';
import { call } from '../support/spec.js';

/** The pool of the real app on a real PostgreSQL, one or two connections so that reuse is visible. */
describe('database connections', () => {
  describe('a query that timed out on the client side', () => {
    const suite = useTestApp({ DB_POOL_MAX: '1', DB_POOL_MIN: '0' });

    it('never hands its connection, statement still running, to the next query', async () => {
      const { knex } = suite.app.database;
      const pid = async () => (await knex.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid')).rows[0]?.pid;
      const first = await pid();
      // pg gives up after 200 ms; the server keeps sleeping for 3 s on that connection.
      let error: unknown;
      await knex.raw('select pg_sleep(3)').options({ query_timeout: 200 }).catch((err: unknown) => { error = err; });
      expect(String(error)).to.match(/timeout/i);
      const next = await pid();
      expect(next, 'the next query runs on a new connection').to.not.equal(first);
    });
  });

  describe('readiness while the pool is busy', () => {
    const suite = useTestApp({ DB_POOL_MAX: '2', DB_POOL_MIN: '0', DB_ACQUIRE_TIMEOUT: '10s' });

    it('stays ready while every pooled connection is taken and requests are waiting for one', async () => {
      const { knex } = suite.app.database;
      const busy = [1, 2, 3].map(() => knex.raw('select pg_sleep(2)').then(() => undefined));
      try {
        const saturated = () => suite.app.database.poolStats().used === 2 && suite.app.database.poolStats().pendingAcquires > 0;
        while (!saturated()) await new Promise((r) => setTimeout(r, 10));
        const ready = await call(`${suite.app.baseUrl}/ready`);
        expect(ready.status).to.equal(200);
        expect(ready.body).to.deep.include({ status: 'ready' });
      } finally {
        await Promise.allSettled(busy);
      }
    });
  });
});
