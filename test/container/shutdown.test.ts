import { Agent } from 'node:http';
import { expect } from 'chai';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { errorCode, json, postUser, send, sleep } from '../reliability/support.js';
import { chart, startService, type ServiceContainer } from './support.js';

interface Outcome {
  start: number;
  end: number;
  requestId: string;
  status?: number;
  error?: string;
  createdId?: number;
}

/**
 * `docker stop` is what the kubelet does at the end of the pod's preStop hook: SIGTERM, then SIGKILL once
 * the termination grace period is over. The service must drain within it, with the chart's own delays.
 */
describe('docker stop under steady load', () => {
  const { drainDelaySeconds, timeoutSeconds, preStopSleepSeconds, terminationGracePeriodSeconds } = chart.shutdown;
  let db: TestDatabase;
  let service: ServiceContainer;
  before(async () => {
    db = await createTestDatabase();
    service = await startService({
      DATABASE_URL: db.url,
      SHUTDOWN_DRAIN_DELAY: `${drainDelaySeconds}s`,
      SHUTDOWN_TIMEOUT: `${timeoutSeconds}s`,
      RATE_LIMIT_RPS: '1000000',
      RATE_LIMIT_BURST: '1000000',
    });
  });
  after(async () => {
    service.remove();
    await db.drop();
  });

  it('fails readiness first, completes in-flight requests, fails no accepted request and exits 0 well within the grace period', async () => {
    const port = service.port;
    const seeded = json(await postUser(port, { name: 'Seed', email: 'seed@example.com' }));
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });
    const outcomes: Outcome[] = [];
    const readiness: { t: number; status?: number; error?: string }[] = [];
    let serial = 0;
    let stopped = false;

    const worker = async (agent: Agent | false) => {
      while (!stopped) {
        const n = serial++;
        const outcome: Outcome = { start: performance.now(), end: 0, requestId: `stop-${n}` };
        const headers = { 'x-request-id': outcome.requestId, 'content-type': 'application/json' };
        try {
          const reply =
            n % 2 === 0
              ? await send(port, { method: 'POST', path: '/api/users', headers, body: JSON.stringify({ name: `Load ${n}`, email: `load-${n}@example.com` }), agent })
              : await send(port, { path: `/api/users/${String(seeded.id)}`, headers, agent });
          outcome.status = reply.status;
          if (reply.status === 201) outcome.createdId = json(reply).id as number;
        } catch (err) {
          outcome.error = errorCode(err);
        }
        outcome.end = performance.now();
        outcomes.push(outcome);
        if (outcome.error === 'ECONNREFUSED') return;
        await sleep(25);
      }
    };
    const probe = async () => {
      while (!stopped) {
        const t = performance.now();
        const result: { t: number; status?: number; error?: string } = await send(port, { path: '/ready' }).then((r) => ({ t, status: r.status }), (err: unknown) => ({ t, error: errorCode(err) }));
        readiness.push(result);
        if (result.error === 'ECONNREFUSED') return;
        await sleep(100);
      }
    };

    const loops = [...Array.from({ length: 4 }, () => worker(keepAlive)), ...Array.from({ length: 4 }, () => worker(false)), probe()];
    await sleep(2000);
    const sigterm = performance.now();
    await service.stop();
    const stoppedAt = performance.now();
    await sleep(300);
    stopped = true;
    await Promise.all(loops);
    keepAlive.destroy();

    const seenByService = new Set(service.logLines().filter((l) => l.msg === 'request').map((l) => l.requestId));
    // A connection caught in the kernel's accept queue as the listener closes is reset unread: never accepted.
    const unread = outcomes.filter((o) => o.error === 'ECONNRESET' && !seenByService.has(o.requestId));
    const failed = outcomes.filter((o) => (o.error !== undefined && o.error !== 'ECONNREFUSED' && !unread.includes(o)) || (o.status !== undefined && o.status >= 300));
    const refused = outcomes.filter((o) => o.error === 'ECONNREFUSED');
    const firstRefused = Math.min(...refused.map((o) => o.end));
    const first503 = readiness.find((r) => r.t >= sigterm && r.status === 503);
    const servedAfterSignal = outcomes.filter((o) => o.start >= sigterm && o.status !== undefined && o.status < 300);
    const figures = {
      requests: outcomes.length,
      servedAfterSignal: servedAfterSignal.length,
      failed: failed.length,
      resetUnread: unread.length,
      readiness503AfterMs: first503 ? Math.round(first503.t - sigterm) : null,
      firstRefusedAfterMs: Math.round(firstRefused - sigterm),
      dockerStopReturnedAfterMs: Math.round(stoppedAt - sigterm),
      exitCode: service.exitCode(),
      gracePeriodSeconds: terminationGracePeriodSeconds,
    };
    console.log(`      container shutdown: ${JSON.stringify(figures)}`);

    expect(failed.map((o) => `${o.error ?? String(o.status)} at +${Math.round(o.start - sigterm)} ms`)).to.deep.equal([]);
    expect(figures.exitCode, 'exit code (137 would mean SIGKILL at the end of the grace period)').to.equal(0);
    // The kubelet sends SIGTERM after the preStop sleep; the process must be gone before the rest of the grace period ends.
    expect(stoppedAt - sigterm, 'exit well within the grace period').to.be.below(((terminationGracePeriodSeconds - preStopSleepSeconds) * 1000) / 2);
    expect(first503, 'readiness turned 503 while the port was still open').to.not.equal(undefined);
    expect(first503!.t, 'readiness fails before new connections are refused').to.be.below(firstRefused);
    expect(readiness.filter((r) => r.t > first503!.t && r.status === 200), 'readiness never recovers while stopping').to.deep.equal([]);
    expect(servedAfterSignal.length, 'requests served during the drain').to.be.greaterThan(0);
    expect(refused.length, 'the listener closes in the end').to.be.greaterThan(0);

    const created = outcomes.flatMap((o) => (o.createdId === undefined ? [] : [o.createdId]));
    const stored = new Set((await db.knex('users').whereIn('id', created).select('id')).map((r: { id: number }) => r.id));
    expect(created.filter((id) => !stored.has(id)), 'every acknowledged write is stored').to.deep.equal([]);
  });
});
