import { readdirSync } from 'node:fs';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { migrateLatest } from '../../service/db/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

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
