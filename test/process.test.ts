import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { expect } from 'chai';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { killLeftoverServices, startServiceProcess, type ServiceProcess } from './support/service-process.js';
import { call, postJson } from './support/spec.js';

/** The service as operators run it: its own process, configured only by environment (from source here). */
function startService(env: Record<string, string>): Promise<ServiceProcess> {
  return startServiceProcess(env, { entry: 'source' });
}

describe('the service process', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  /** What a test started outside startServiceProcess, ended after it whatever its outcome. */
  let child: ChildProcess | undefined;
  let socket: Socket | undefined;
  before(async () => { db = await createTestDatabase(); });
  afterEach(async () => {
    socket?.destroy();
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    }
    child = undefined;
    socket = undefined;
    await killLeftoverServices();
  });
  after(async () => { await db.drop(); });

  it('exits 1 with one clear line naming a bad variable, and no stack trace', async () => {
    const main = spawn(process.execPath, ['--import', 'tsx', 'service/main.ts'], {
      env: { PATH: process.env.PATH ?? '', SHUTDOWN_TIMEOUT: 'soon' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = main;
    let stderr = '';
    main.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(main, 'exit')) as [number];
    expect(code).to.equal(1);
    expect(stderr.trim().split('\n')).to.have.length(1);
    expect(stderr).to.include('SHUTDOWN_TIMEOUT="soon" is invalid');
    expect(stderr).to.not.match(/\n\s+at /);
  });

  it('runs on an embedded PostgreSQL when DATABASE_URL is unset, with one warning', async () => {
    const service = await startService({});
    const created = await postJson(`${service.baseUrl}/api/users`, { name: 'Embedded', email: 'embedded@example.com' });
    expect(created.status).to.equal(201);
    const fetched = await call(`${service.baseUrl}${created.headers.get('location') ?? ''}`);
    expect(fetched.status).to.equal(200);
    expect(fetched.body).to.deep.equal(created.body);
    expect(service.lines.filter((l) => l.level === 'warn' && /embedded/.test(String(l.msg)))).to.have.length(1);
  });

  it('on SIGTERM finishes a request that is in flight, then exits 0', async () => {
    const service = await startService({ DATABASE_URL: db.url, SHUTDOWN_DRAIN_DELAY: '300ms', SHUTDOWN_TIMEOUT: '10s' });
    const body = JSON.stringify({ name: 'Slow', email: 'slow@example.com' });
    const client = connect(service.port, '127.0.0.1');
    socket = client;
    await once(client, 'connect');
    // Headers and half the body now; the rest after SIGTERM: the request is in flight across it.
    client.write(`POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.write(body.slice(0, 10));
    let response = '';
    client.on('data', (chunk: Buffer) => (response += chunk.toString()));
    service.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 600));
    client.write(body.slice(10));
    const code = await service.exited;
    expect(response).to.match(/^HTTP\/1\.1 201/);
    expect(code).to.equal(0);
    const [{ count }] = (await db.knex('users').where({ email: 'slow@example.com' }).count({ count: '*' })) as [{ count: string }];
    expect(Number(count)).to.equal(1);
  });
});
