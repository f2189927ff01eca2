import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { migrateLatest } from '../../service/db/migrator.js';
import { ADMIN_URL } from '../support/database.js';

describe('migrations', () => {
  const name = `users_migrate_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
  let runners: Knex[] = [];
  let db: Knex;

  before(async () => {
    await admin.raw(`CREATE DATABASE ${name}`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    // Separate pools, as separate pods or Jobs would have.
    runners = Array.from({ length: 3 }, () => knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 3 } }));
    db = runners[0]!;
  });
  after(async () => {
    await Promise.all(runners.map((k) => k.destroy()));
    await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  });

  it('can be started by several runners at once: one applies them, the others find nothing to do', async () => {
    const applied = await Promise.all(runners.map((k) => migrateLatest(k, { advisoryLock: true })));
    expect(applied.map((a) => a.length).sort()).to.deep.equal([0, 0, 2]);
  });

  it('creates the users table of the architecture document', async () => {
    const { rows } = await db.raw<{ rows: Record<string, unknown>[] }>(`
      SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
      FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position`);
    expect(rows.map((r) => [r.column_name, r.data_type, r.character_maximum_length, r.is_nullable])).to.deep.equal([
      ['id', 'integer', null, 'NO'],
      ['name', 'character varying', 100, 'NO'],
      ['email', 'character varying', 255, 'NO'],
      ['created_at', 'timestamp with time zone', null, 'YES'],
      ['updated_at', 'timestamp with time zone', null, 'YES'],
      ['version', 'integer', null, 'NO'],
    ]);
    expect(String(rows[0]?.column_default)).to.match(/^nextval/);
  });

  it('creates the e-mail uniqueness and both named indexes', async () => {
    const { rows } = await db.raw<{ rows: { indexname: string; indexdef: string }[] }>(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users'`);
    const names = rows.map((r) => r.indexname);
    expect(names).to.include.members(['idx_users_email', 'idx_users_created_at']);
    expect(rows.some((r) => /UNIQUE INDEX .* \(email\)/.test(r.indexdef))).to.be.true;
  });

  it('keeps updated_at true when a row changes', async () => {
    const [created] = await db('users').insert({ name: 'Before', email: 'trigger@example.com' }).returning<{ id: number; updated_at: Date }[]>(['id', 'updated_at']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await db('users').where({ id: created!.id }).update({ name: 'After' });
    const row = await db('users').where({ id: created!.id }).first<{ updated_at: Date; created_at: Date }>();
    expect(row.updated_at.getTime()).to.be.greaterThan(created!.updated_at.getTime());
    expect(row.created_at.getTime()).to.equal(created!.updated_at.getTime());
  });
});
