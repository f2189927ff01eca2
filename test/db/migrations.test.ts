import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { migrateLatest } from '../../service/db/migrator.js';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../support/database.js';

const MIGRATION_FILES = readdirSync(new URL('../../migrations', import.meta.url)).filter((f) => f.endsWith('.ts'));

describe('migrations', () => {
  it('can be started by several runners at once: one applies them, the others find nothing to do', async () => {
    const db = await createTestDatabase({ migrate: false });
    // Separate pools, as separate pods or Jobs would have.
    const runners: Knex[] = Array.from({ length: 3 }, () => knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 3 } }));
    try {
      const applied = await Promise.all(runners.map((k) => migrateLatest(k, { advisoryLock: true })));
      expect(applied.map((a) => a.length).sort()).to.deep.equal([0, 0, MIGRATION_FILES.length]);
    } finally {
      await Promise.all(runners.map((k) => k.destroy()));
      await db.drop();
    }
  });

  describe('on a migrated database', () => {
    let db: TestDatabase;
    before(async () => {
      db = await createTestDatabase();
    });
    after(async () => {
      await db.drop();
    });

    it('creates the users table of the architecture document', async () => {
      const { rows } = await db.knex.raw<{ rows: Record<string, unknown>[] }>(`
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
      const { rows } = await db.knex.raw<{ rows: { indexname: string; indexdef: string }[] }>(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users'`);
      const names = rows.map((r) => r.indexname);
      expect(names).to.include.members(['idx_users_email', 'idx_users_created_at']);
      expect(rows.some((r) => /UNIQUE INDEX .* \(email\)/.test(r.indexdef))).to.be.true;
    });

    it('keeps updated_at true when a row changes', async () => {
      const [created] = await db.knex('users').insert({ name: 'Before', email: 'trigger@example.com' }).returning<{ id: number; updated_at: Date }[]>(['id', 'updated_at']);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await db.knex('users').where({ id: created!.id }).update({ name: 'After' });
      const row = await db.knex('users').where({ id: created!.id }).first<{ updated_at: Date; created_at: Date }>();
      expect(row.updated_at.getTime()).to.be.greaterThan(created!.updated_at.getTime());
      expect(row.created_at.getTime()).to.equal(created!.updated_at.getTime());
    });
  });
});

describe('migration 20260301000000 (row versions, idempotency keys) on a populated table', () => {
  const name = `users_migrate_populated_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
  const migrations = { directory: fileURLToPath(new URL('../../migrations', import.meta.url)), loadExtensions: ['.ts'] };
  let db: Knex;
  let other: Knex;
  const relfilenode = async () =>
    (await db.raw<{ rows: { relfilenode: number }[] }>(`SELECT relfilenode FROM pg_class WHERE relname = 'users'`)).rows[0]?.relfilenode;

  before(async () => {
    await admin.raw(`CREATE DATABASE ${name}`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    db = knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 3 } });
    other = knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 1 } });
    // The schema the previous release runs on, with its users.
    await db.migrate.up({ ...migrations, name: '20260101000000_create_users.ts' });
    await db('users').insert(Array.from({ length: 500 }, (_, i) => ({ name: `Existing ${i}`, email: `existing${i}@example.com` })));
  });
  after(async () => {
    await Promise.all([db.destroy(), other.destroy()]);
    await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  });

  it('gives up instead of queueing behind a long transaction, which would block every query on users', async () => {
    const blocker = await other.transaction();
    try {
      await blocker.raw('SELECT count(*) FROM users');
      const failure = await migrateLatest(db, { advisoryLock: true }).then(() => undefined, (err: unknown) => err);
      expect((failure as { code?: string } | undefined)?.code, 'lock_not_available').to.equal('55P03');
    } finally {
      await blocker.rollback();
    }
    const { rows } = await db.raw<{ rows: unknown[] }>(`SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'version'`);
    expect(rows, 'the failed attempt left nothing behind').to.deep.equal([]);
  });

  it('adds the version column to existing rows without rewriting the table', async () => {
    const before = await relfilenode();
    expect(await migrateLatest(db, { advisoryLock: true })).to.deep.equal(['20260301000000_users_version_and_idempotency_keys.ts']);
    expect(await relfilenode(), 'same heap file: no table rewrite').to.equal(before);
    const versions = await db('users').distinct('version').pluck('version');
    expect(versions).to.deep.equal([1]);
    expect(Number((await db('users').count({ n: '*' }).first<{ n: string }>()).n)).to.equal(500);
  });

  describe('once applied', () => {
    // Applied here too (a no-op after the test above), so the tests below also pass when run alone.
    before(async () => { await migrateLatest(db, { advisoryLock: true }); });

    it('bumps the version on every update, whatever the update sets', async () => {
      const id = (await db('users').min({ id: 'id' }).first<{ id: number }>()).id;
      await db('users').where({ id }).update({ name: 'Renamed' });
      await db('users').where({ id }).update({ name: 'Renamed again', version: 1 });
      const row = await db('users').where({ id }).first<{ version: number }>();
      expect(row.version).to.equal(3);
    });
  });
});
