import { expect } from 'chai';
import fc from 'fast-check';
import { BACKENDS, useTestApp } from '../support/app.js';
import type { ApiResponse } from '../support/spec.js';
import { problemType, usersClient, type UserBody } from './client.js';

/**
 * Model-based property test: random sequences of creates (with and without Idempotency-Key),
 * conditional patches and erasures, reads and lookups, run against the API and against a model of
 * what the API promises. After every step the table must hold exactly the model's users at the
 * model's versions, and the stored keys exactly the model's (erased ones without any data).
 */

const SEED = Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31);
const RUNS = 25;
const GHOST_ID = 2_147_483_647;

interface ModelUser {
  id: number;
  name: string;
  email: string;
  version: number;
}
type ModelKey = { erased: false; fingerprint: string; userId: number; body: UserBody; etag: string } | { erased: true };

interface Model {
  users: Map<number, ModelUser>;
  keys: Map<string, ModelKey>;
  erasedIds: number[];
}

type Api = ReturnType<typeof usersClient>;
interface Real {
  api: Api;
  table: () => Promise<ModelUser[]>;
  keys: () => Promise<{ key: string; user_id: number | null; body: unknown; fingerprint: string | null; erased: boolean }[]>;
}

type EtagChoice = 'current' | 'stale' | 'any' | 'none';

const etagOf = (version: number) => `"${version}"`;
const normalized = (name: string, email: string) => ({ name: name.trim(), email: email.trim().toLowerCase() });

/** Picks a model user by index, or an id nobody has (an erased one when there is one). */
function target(model: Model, pick: number, ghost: boolean): ModelUser | { id: number } {
  const users = [...model.users.values()];
  if (ghost || users.length === 0) return { id: model.erasedIds[pick % Math.max(1, model.erasedIds.length)] ?? GHOST_ID };
  return users[pick % users.length] as ModelUser;
}

function ifMatch(choice: EtagChoice, user: ModelUser | { id: number }): Record<string, string> {
  const version = 'version' in user ? user.version : 1;
  if (choice === 'none') return {};
  if (choice === 'any') return { 'if-match': '*' };
  return { 'if-match': etagOf(choice === 'current' ? version : version - 1) };
}

function expectUser(res: ApiResponse, user: ModelUser): void {
  expect(res.headers.get('etag'), 'ETag').to.equal(etagOf(user.version));
  expect(res.body).to.include({ id: user.id, name: user.name, email: user.email });
}

class Create implements fc.AsyncCommand<Model, Real> {
  constructor(readonly name: string, readonly email: string, readonly key: string | undefined) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const res = await real.api.create({ name: this.name, email: this.email }, this.key);
    const wanted = normalized(this.name, this.email);
    const stored = this.key === undefined ? undefined : model.keys.get(this.key);
    if (stored?.erased) {
      expect(res.status).to.equal(410);
      return;
    }
    if (stored) {
      if (stored.fingerprint !== JSON.stringify(wanted)) {
        expect(res.status).to.equal(422);
        return;
      }
      expect(res.status).to.equal(201);
      expect(res.headers.get('idempotent-replayed')).to.equal('true');
      expect(res.body).to.deep.equal(stored.body);
      expect(res.headers.get('etag')).to.equal(stored.etag);
      return;
    }
    if ([...model.users.values()].some((u) => u.email === wanted.email)) {
      expect(res.status).to.equal(409);
      expect(problemType(res)).to.equal('duplicate-email');
      return;
    }
    expect(res.status).to.equal(201);
    const body = res.body as UserBody;
    const user = { id: body.id, ...wanted, version: 1 };
    expectUser(res, user);
    model.users.set(user.id, user);
    if (this.key !== undefined) {
      model.keys.set(this.key, { erased: false, fingerprint: JSON.stringify(wanted), userId: user.id, body, etag: etagOf(1) });
    }
  }
  toString = () => `create(${JSON.stringify(this.name)}, ${JSON.stringify(this.email)}, key=${String(this.key)})`;
}

class Patch implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number, readonly ghost: boolean, readonly changes: { name?: string; email?: string }, readonly etag: EtagChoice) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const user = target(model, this.pick, this.ghost);
    const etag = this.etag === 'stale' && 'version' in user && user.version === 1 ? 'stale' : this.etag;
    const res = await real.api.patch(user.id, this.changes, ifMatch(etag, user));
    if (etag === 'none') return void expect(res.status).to.equal(428);
    if (!('version' in user)) return void expect(res.status).to.equal(404);
    if (etag === 'stale') return void expect(res.status).to.equal(412);
    const next = { ...user };
    if (this.changes.name !== undefined) next.name = this.changes.name.trim();
    if (this.changes.email !== undefined) next.email = this.changes.email.trim().toLowerCase();
    if ([...model.users.values()].some((u) => u.id !== user.id && u.email === next.email)) {
      expect(res.status).to.equal(409);
      return;
    }
    if (Object.keys(this.changes).length > 0) next.version += 1;
    expect(res.status).to.equal(200);
    expectUser(res, next);
    model.users.set(next.id, next);
  }
  toString = () => `patch(#${this.pick}${this.ghost ? ' ghost' : ''}, ${JSON.stringify(this.changes)}, ${this.etag})`;
}

class Erase implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number, readonly ghost: boolean, readonly etag: Exclude<EtagChoice, 'any'>) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const user = target(model, this.pick, this.ghost);
    const res = await real.api.erase(user.id, ifMatch(this.etag, user));
    if (!('version' in user)) return void expect(res.status).to.equal(404);
    if (this.etag === 'stale') return void expect(res.status).to.equal(412);
    expect(res.status).to.equal(204);
    model.users.delete(user.id);
    model.erasedIds.push(user.id);
    for (const [key, stored] of model.keys) if (!stored.erased && stored.userId === user.id) model.keys.set(key, { erased: true });
  }
  toString = () => `erase(#${this.pick}${this.ghost ? ' ghost' : ''}, ${this.etag})`;
}

class Read implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number, readonly ghost: boolean, readonly conditional: boolean) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const user = target(model, this.pick, this.ghost);
    const headers: Record<string, string> = this.conditional && 'version' in user ? { 'if-none-match': etagOf(user.version) } : {};
    const res = await real.api.get(user.id, headers);
    if (!('version' in user)) return void expect(res.status).to.equal(404);
    if (this.conditional) return void expect(res.status).to.equal(304);
    expect(res.status).to.equal(200);
    expectUser(res, user);
  }
  toString = () => `get(#${this.pick}${this.ghost ? ' ghost' : ''}${this.conditional ? ', if-none-match' : ''})`;
}

class Lookup implements fc.AsyncCommand<Model, Real> {
  constructor(readonly email: string) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const res = await real.api.lookup(`email=${encodeURIComponent(this.email)}`);
    expect(res.status).to.equal(200);
    const found = [...model.users.values()].filter((u) => u.email === this.email.toLowerCase());
    expect((res.body as { items: UserBody[] }).items.map((u) => [u.id, u.name, u.email])).to.deep.equal(found.map((u) => [u.id, u.name, u.email]));
  }
  toString = () => `lookup(${this.email})`;
}

/** After every step: the table holds the model's users at the model's versions, and the keys agree. */
let steps = 0;
class Agree implements fc.AsyncCommand<Model, Real> {
  constructor(readonly inner: fc.AsyncCommand<Model, Real>) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    steps += 1;
    await this.inner.run(model, real);
    const expected = [...model.users.values()].sort((a, b) => a.id - b.id);
    expect(await real.table(), `table after ${this.inner.toString()}`).to.deep.equal(expected);
    const keys = await real.keys();
    expect(keys.map((k) => k.key).sort(), 'stored keys').to.deep.equal([...model.keys.keys()].sort());
    for (const row of keys) {
      const stored = model.keys.get(row.key);
      if (stored?.erased) expect(row, `erased key ${row.key}`).to.deep.include({ erased: true, user_id: null, body: null, fingerprint: null });
      else expect(row.user_id, `key ${row.key}`).to.equal(stored?.userId);
    }
  }
  toString = () => this.inner.toString();
}

const names = fc.constantFrom('Ada', ' Grace ', 'Linus', 'Zoë', "O'Brien");
const emails = fc.tuple(fc.constantFrom('a@x.io', 'b@x.io', 'c@x.io', 'd@y.org'), fc.boolean()).map(([e, upper]) => (upper ? e.toUpperCase() : e));
const keys = fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: undefined });
const pick = fc.nat(20);
const ghost = fc.nat(9).map((n) => n < 2);
const commands = fc.commands(
  [
    fc.tuple(names, emails, keys).map(([n, e, k]) => new Agree(new Create(n, e, k))),
    fc.tuple(pick, ghost, fc.record({ name: names, email: emails }, { requiredKeys: [] }), fc.constantFrom<EtagChoice>('current', 'current', 'stale', 'any', 'none'))
      .map(([p, g, c, t]) => new Agree(new Patch(p, g, c, t))),
    fc.tuple(pick, ghost, fc.constantFrom<Exclude<EtagChoice, 'any'>>('current', 'stale', 'none')).map(([p, g, t]) => new Agree(new Erase(p, g, t))),
    fc.tuple(pick, ghost, fc.boolean()).map(([p, g, c]) => new Agree(new Read(p, g, c))),
    emails.map((e) => new Agree(new Lookup(e))),
  ],
  { maxCommands: 40, size: 'max' },
);

for (const backend of BACKENDS) {
  describe(`the users resource against its model (${backend})`, function () {
    this.timeout(600_000);
    const suite = useTestApp({}, backend);

    it(`keeps API and table in agreement over ${RUNS} random sequences of writes with ETags and keys`, async () => {
      const knex = () => suite.app.database.knex;
      const real: Real = {
        api: usersClient(() => suite.app.baseUrl),
        table: async () => (await knex()('users').orderBy('id').select<ModelUser[]>('id', 'name', 'email', 'version')),
        keys: async () =>
          (await knex()('idempotency_keys').select<{ key: string; user_id: number | null; body: unknown; fingerprint: string | null; erased_at: unknown }[]>(
            'key', 'user_id', 'body', 'fingerprint', 'erased_at',
          )).map(({ erased_at, ...row }) => ({ ...row, erased: erased_at !== null })),
      };
      steps = 0;
      await fc.assert(
        fc.asyncProperty(commands, async (cmds) => {
          await knex().raw('TRUNCATE users, idempotency_keys RESTART IDENTITY');
          await fc.asyncModelRun(() => ({ model: { users: new Map(), keys: new Map(), erasedIds: [] }, real }), cmds);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      console.log(`      model (${backend}): ${RUNS} sequences, ${steps} steps checked (seed ${SEED}; MODEL_SEED=${SEED} replays)`);
    });
  });
}
