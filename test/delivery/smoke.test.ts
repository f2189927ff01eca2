// The pre-promotion smoke test (service/smoke.ts, run by Argo Rollouts as a Job metric against the preview
// Service) against the real application on a real PostgreSQL: it passes on a working release and fails, naming
// the request, on a release that is not ready, breaks the contract, or cannot erase what it wrote.
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { loadOpenApi } from '../../service/openapi/contract.js';
import { runSmoke, type SmokeCheck } from '../../service/smoke/checks.js';
import { useTestApp } from '../support/app.js';
import { repoPath } from './support.js';

const run = promisify(execFile);

describe('smoke test (service/smoke.ts)', function () {
  this.timeout(60_000);
  const ctx = useTestApp();
  const checks: SmokeCheck[] = [];
  const record = (c: SmokeCheck): void => {
    checks.push(c);
  };
  beforeEach(() => {
    checks.length = 0;
    ctx.app.draining.value = false;
  });

  it('passes on a working release: health, readiness and a read that matches the OpenAPI contract', async () => {
    expect(await runSmoke({ baseUrl: ctx.app.baseUrl, writeCycle: false, timeoutMs: 5000 }, record)).to.equal(true);
    expect(checks.map((c) => [c.name, c.ok])).to.deep.equal([
      ['GET /health', true],
      ['GET /ready', true],
      ['GET /api/users?limit=1 (contract)', true],
    ]);
  });

  it('fails, naming the request, when the release is not ready', async () => {
    ctx.app.draining.value = true;
    expect(await runSmoke({ baseUrl: ctx.app.baseUrl, writeCycle: false, timeoutMs: 5000 }, record)).to.equal(false);
    expect(checks.at(-1)).to.deep.include({ name: 'GET /ready', ok: false });
    expect(checks.at(-1)!.detail).to.match(/^GET \/ready answered 503/);
  });

  it('fails when a read answers 200 with a body the contract does not allow', async () => {
    const broken = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url?.startsWith('/api/') ? { items: [{ id: 'one' }], next_cursor: null } : { status: 'ok' }));
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    try {
      const baseUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}`;
      expect(await runSmoke({ baseUrl, writeCycle: false, timeoutMs: 5000 }, record)).to.equal(false);
      expect(checks.at(-1)!.detail).to.match(/breaks the OpenAPI contract \(listUsers 200\)/);
    } finally {
      await new Promise((resolve) => broken.close(resolve));
    }
  });

  it('the write cycle creates, reads and erases a user where the API can erase; otherwise it fails at the erase', async () => {
    const canErase = Object.values(loadOpenApi().paths).some((ops) => 'delete' in ops);
    const ok = await runSmoke({ baseUrl: ctx.app.baseUrl, writeCycle: true, timeoutMs: 5000 }, record);
    expect(checks.slice(3, 5).map((c) => [c.name, c.ok])).to.deep.equal([
      ['POST /api/users (contract)', true],
      ['GET /api/users/{id} reads what was written', true],
    ]);
    if (canErase) {
      expect(ok, JSON.stringify(checks)).to.equal(true);
      const left = await ctx.db.knex('users').where('email', 'like', 'smoke-%@example.invalid').count<{ count: string }[]>('* as count');
      expect(Number(left[0]!.count), 'nothing left behind').to.equal(0);
    } else {
      expect(ok).to.equal(false);
      expect(checks.at(-1)).to.deep.include({ name: 'DELETE /api/users/{id} erases it', ok: false });
    }
  });

  it('as a process: exit 0 and one JSON line per check on success, exit 1 on failure', async () => {
    const script = repoPath('service', 'smoke.ts');
    const env = { ...process.env, SMOKE_BASE_URL: ctx.app.baseUrl, SMOKE_WRITE_CYCLE: 'false' };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script], { env });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.check ?? l.msg)).to.deep.equal(['GET /health', 'GET /ready', 'GET /api/users?limit=1 (contract)', 'smoke test passed']);
    ctx.app.draining.value = true;
    const failed = await run(process.execPath, ['--import', 'tsx', script], { env }).then(
      () => undefined,
      (err: unknown) => err as { code: number; stdout: string },
    );
    expect(failed?.code).to.equal(1);
    expect(failed?.stdout).to.include('"msg":"smoke test failed"');
  });
});
