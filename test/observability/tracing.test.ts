import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { PrivateRedis } from '../ratelimit/support.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { closedPortUrl, startCollector, type Collector, type ExportedSpan } from '../support/otlp-collector.js';
import { parseMetrics, sumOf } from '../support/prometheus.js';
import { call, postJson } from '../support/spec.js';

const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

/** A caller's span context, as an upstream service would send it. */
function callerContext(sampled = true) {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-${sampled ? '01' : '00'}` };
}

/** A redis-server of this suite's own: CI's test job has no shared Redis (the limiter suites start theirs too). */
let redis: PrivateRedis;

/**
 * Exports as fast as possible so tests do not wait for the 5 s default batch delay. Redis gets a
 * generous timeout: on a busy machine the limiter would otherwise fall back, which is its own test.
 */
const fastExport = () => ({ OTEL_BSP_SCHEDULE_DELAY: '20', REDIS_URL: redis.url, RATE_LIMIT_REDIS_TIMEOUT: '5s' });

const serverSpanOf = (traceId: string) => (spans: ExportedSpan[]) => spans.find((s) => s.traceId === traceId && s.kind === SERVER);

describe('tracing (OpenTelemetry, OTLP/HTTP)', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
    redis = await PrivateRedis.start();
  });
  after(async () => {
    await redis.stop();
    await db.drop();
  });

  describe('exporting OTLP/JSON with every trace sampled', () => {
    let collector: Collector;
    let app: TestApp;
    let userId: number;
    before(async () => {
      collector = await startCollector();
      app = await startTestApp(db.url, { ...fastExport(), OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'users-service-test', OTEL_RESOURCE_ATTRIBUTES: 'k8s.namespace.name=staging,service.version=1.2.3' });
      // Redis connects in the background; until then the in-process fallback decides (and says so).
      while (app.rateLimiter.health() !== 'ok') await new Promise((resolve) => setTimeout(resolve, 20));
      const created = await postJson(`${app.baseUrl}/api/users`, { name: 'Traced', email: `traced-${randomUUID()}@example.com` });
      userId = (created.body as { id: number }).id;
    });
    after(async () => {
      await app.close();
      await collector.close();
    });

    it('continues the caller\'s trace with a server span named by the route template', async () => {
      const caller = callerContext();
      const res = await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: caller.traceparent } });
      expect(res.status).to.equal(200);
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      expect(server.name).to.equal('GET /api/users/{id}');
      expect(server.parentSpanId).to.equal(caller.spanId);
      expect(server.attributes).to.include({ 'http.request.method': 'GET', 'http.route': '/api/users/{id}', 'http.response.status_code': 200, 'url.path': `/api/users/${String(userId)}` });
      expect(server.statusCode).to.not.equal(STATUS_ERROR);
      expect(collector.contentTypes[0]).to.match(/^application\/json/);
    });

    it('names the service and its resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: caller.traceparent } });
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      expect(server.resource).to.include({ 'service.name': 'users-service-test', 'k8s.namespace.name': 'staging', 'service.version': '1.2.3' });
    });

    it('starts a new trace when the caller sends none', async () => {
      const res = await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { 'x-request-id': 'new-trace-test' } });
      expect(res.status).to.equal(200);
      const line = app.logs.find((l) => l.requestId === 'new-trace-test' && l.msg === 'request');
      const traceId = line?.trace_id as string;
      expect(traceId).to.match(/^[0-9a-f]{32}$/);
      const server = await collector.waitFor(serverSpanOf(traceId));
      expect(server.parentSpanId).to.equal('');
    });

    it('records the database query and the limiter decision as children of the server span', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: caller.traceparent } });
      const [server, query, limiter] = await collector.waitFor((spans) => {
        const inTrace = spans.filter((s) => s.traceId === caller.traceId);
        const found = [inTrace.find((s) => s.kind === SERVER), inTrace.find((s) => s.name === 'users_get'), inTrace.find((s) => s.name === 'ratelimit')];
        return found.every(Boolean) ? (found as ExportedSpan[]) : undefined;
      });
      expect(query?.parentSpanId).to.equal(server?.spanId);
      expect(query?.kind).to.equal(CLIENT);
      expect(query?.attributes).to.include({ 'db.system.name': 'postgresql', 'db.operation.name': 'users_get' });
      expect(limiter?.parentSpanId).to.equal(server?.spanId);
      expect(limiter?.attributes).to.include({ 'ratelimit.outcome': 'allowed', 'ratelimit.fallback': false });
    });

    it('never puts parameter values (personal data) on a database span', async () => {
      const email = `secret-${randomUUID()}@example.com`;
      const caller = callerContext();
      await postJson(`${app.baseUrl}/api/users`, { name: 'Private Person', email }, { traceparent: caller.traceparent });
      const query = await collector.waitFor((spans) => spans.find((s) => s.traceId === caller.traceId && s.name === 'users_create'));
      expect(JSON.stringify(query)).to.not.include(email).and.not.include('Private Person');
    });

    it('stamps every log line of the request, the access line included, with its trace and span id', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: caller.traceparent, 'x-request-id': 'trace-log-test' } });
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      const lines = app.logs.filter((l) => l.requestId === 'trace-log-test');
      expect(lines.map((l) => l.msg)).to.include('request');
      for (const line of lines) expect(line).to.include({ trace_id: caller.traceId, span_id: server.spanId, trace_flags: '01' });
    });

    it('names a request to a random path by its method only, so random paths add no span names', async () => {
      const caller = callerContext();
      const randomPath = `/no-such-${randomUUID()}`;
      const res = await call(`${app.baseUrl}${randomPath}`, { headers: { traceparent: caller.traceparent } });
      expect(res.status).to.equal(404);
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      expect(server.name).to.equal('GET');
      expect(server.attributes).to.not.have.property('http.route');
      expect(collector.spans.map((s) => s.name).join('\n')).to.not.include(randomPath);
    });

    it('does not mark a client error (4xx) as a server error', async () => {
      const caller = callerContext();
      const res = await call(`${app.baseUrl}/api/users/987654321`, { headers: { traceparent: caller.traceparent } });
      expect(res.status).to.equal(404);
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      expect(server.attributes['http.response.status_code']).to.equal(404);
      expect(server.statusCode).to.not.equal(STATUS_ERROR);
    });

    it('ignores baggage sent by the caller', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: caller.traceparent, baggage: 'tenant=evil-baggage' } });
      await collector.waitFor(serverSpanOf(caller.traceId));
      expect(JSON.stringify(collector.spans.filter((s) => s.traceId === caller.traceId))).to.not.include('evil-baggage');
    });

    it('leaves probes and scrapes out of the traces', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/health`, { headers: { traceparent: caller.traceparent } });
      const after = callerContext();
      await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: after.traceparent } });
      // Spans leave in the order they end: once the later request's span is in, the probe's would be too.
      await collector.waitFor(serverSpanOf(after.traceId));
      expect(collector.spans.filter((s) => s.traceId === caller.traceId)).to.deep.equal([]);
    });

    it('links latency buckets to traces with exemplars when the scrape asks for OpenMetrics', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/${String(userId)}`, { headers: { traceparent: caller.traceparent } });
      const res = await fetch(app.metricsUrl, { headers: { Accept: 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5' } });
      expect(res.headers.get('content-type')).to.match(/^application\/openmetrics-text/);
      const text = await res.text();
      expect(text).to.match(new RegExp(`^http_request_duration_seconds_bucket\\{[^}]*route="/api/users/\\{id\\}"[^}]*\\} \\d+ # \\{trace_id="[0-9a-f]{32}"\\}`, 'm'));
      expect(text.trimEnd().endsWith('# EOF')).to.equal(true);
    });

    it('keeps the Prometheus text format, counter names included, for scrapes that do not ask for OpenMetrics', async () => {
      await fetch(app.metricsUrl, { headers: { Accept: 'application/openmetrics-text' } }).then((r) => r.text());
      const res = await fetch(app.metricsUrl);
      expect(res.headers.get('content-type')).to.match(/^text\/plain/);
      const text = await res.text();
      expect(text).to.include('# TYPE ratelimit_decisions_total counter');
      expect(text).to.not.include(' # {trace_id=');
    });
  });

  describe('exporting OTLP/protobuf (the default protocol)', () => {
    let collector: Collector;
    let app: TestApp;
    before(async () => {
      collector = await startCollector();
      app = await startTestApp(db.url, { ...fastExport(), OTEL_EXPORTER_OTLP_ENDPOINT: collector.url });
    });
    after(async () => {
      await app.close();
      await collector.close();
    });

    it('sends protobuf that decodes to the same trace shape', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users?limit=5`, { headers: { traceparent: caller.traceparent } });
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      expect(collector.contentTypes[0]).to.equal('application/x-protobuf');
      expect(server.name).to.equal('GET /api/users');
      expect(server.parentSpanId).to.equal(caller.spanId);
      const query = await collector.waitFor((spans) => spans.find((s) => s.traceId === caller.traceId && s.name === 'users_list'));
      expect(query.parentSpanId).to.equal(server.spanId);
    });
  });

  describe('when a dependency fails', () => {
    let collector: Collector;
    let app: TestApp;
    before(async () => {
      collector = await startCollector();
      app = await startTestApp('postgres://postgres@127.0.0.1:1/test', { ...fastExport(), REDIS_URL: 'redis://127.0.0.1:1', OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, DB_ACQUIRE_TIMEOUT: '500ms' });
    });
    after(async () => {
      await app.close();
      await collector.close();
    });

    it('marks the server span and the failed query as errors, with the error class and no message', async () => {
      const caller = callerContext();
      const res = await call(`${app.baseUrl}/api/users/1`, { headers: { traceparent: caller.traceparent } });
      expect(res.status).to.equal(503);
      const server = await collector.waitFor(serverSpanOf(caller.traceId));
      expect(server.statusCode).to.equal(STATUS_ERROR);
      expect(server.attributes['error.type']).to.equal('503');
      const query = await collector.waitFor((spans) => spans.find((s) => s.traceId === caller.traceId && s.name === 'users_get'));
      expect(query.statusCode).to.equal(STATUS_ERROR);
      expect(query.attributes['error.type']).to.be.a('string');
    });

    it('shows on the limiter span that Redis failed and the in-process fallback decided', async () => {
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/1`, { headers: { traceparent: caller.traceparent } });
      const limiter = await collector.waitFor((spans) => spans.find((s) => s.traceId === caller.traceId && s.name === 'ratelimit'));
      expect(limiter.attributes).to.include({ 'ratelimit.outcome': 'fallback_allowed', 'ratelimit.fallback': true });
    });

    it('records the failed Redis call as an event on the limiter span', async () => {
      // While Redis is down one request per 500 ms tries it, the others decide in-process at once: after 600 ms
      // without a request, the next one is the one that tries (and the first request of an app always is).
      await new Promise((resolve) => setTimeout(resolve, 600));
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users/1`, { headers: { traceparent: caller.traceparent } });
      const limiter = await collector.waitFor((spans) => spans.find((s) => s.traceId === caller.traceId && s.name === 'ratelimit'));
      expect(limiter.events).to.include('ratelimit.redis_failed');
      expect(limiter.attributes['ratelimit.fallback']).to.equal(true);
    });
  });

  describe('sampling off (parentbased_always_off)', () => {
    it('exports nothing for requests that start their own trace', async () => {
      const collector = await startCollector();
      const app = await startTestApp(db.url, { ...fastExport(), OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
      try {
        for (let i = 0; i < 5; i++) expect((await call(`${app.baseUrl}/api/users?limit=1`)).status).to.equal(200);
      } finally {
        // Closing flushes whatever was queued: after it, nothing more can arrive.
        await app.close();
      }
      expect(collector.spans).to.deep.equal([]);
      const access = app.logs.filter((l) => l.msg === 'request');
      expect(access.length).to.be.greaterThan(0);
      for (const line of access) expect(line).to.include({ trace_flags: '00' });
      await collector.close();
    });
  });

  describe('shutdown', () => {
    it('flushes spans still waiting for their batch', async () => {
      const collector = await startCollector();
      const app = await startTestApp(db.url, { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '600000' });
      const caller = callerContext();
      await call(`${app.baseUrl}/api/users?limit=1`, { headers: { traceparent: caller.traceparent } });
      expect(collector.spans).to.deep.equal([]);
      await app.close();
      expect(collector.spans.some((s) => s.traceId === caller.traceId && s.kind === SERVER)).to.equal(true);
      await collector.close();
    });
  });

  describe('with the collector unavailable', () => {
    const dropped = async (app: TestApp, reason: string) => sumOf(parseMetrics(await (await fetch(app.metricsUrl)).text()), 'tracing_spans_dropped_total', { reason });

    async function untilDropped(app: TestApp, reason: string): Promise<number> {
      for (;;) {
        const value = await dropped(app, reason);
        if (value > 0) return value;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    it('answers normally while the collector is down, and counts the spans it could not export', async () => {
      const app = await startTestApp(db.url, { ...fastExport(), OTEL_EXPORTER_OTLP_ENDPOINT: await closedPortUrl(), OTEL_EXPORTER_OTLP_TIMEOUT: '200' });
      try {
        expect(await dropped(app, 'export_failed')).to.equal(0);
        for (let i = 0; i < 10; i++) expect((await call(`${app.baseUrl}/api/users?limit=1`)).status).to.equal(200);
        expect(await untilDropped(app, 'export_failed')).to.be.greaterThan(0);
      } finally {
        await app.close();
      }
    });

    it('answers normally while the collector hangs, dropping spans past the queue bound', async () => {
      const hung = await startCollector({ answer: false });
      const app = await startTestApp(db.url, {
        ...fastExport(),
        OTEL_EXPORTER_OTLP_ENDPOINT: hung.url,
        OTEL_BSP_MAX_QUEUE_SIZE: '4',
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '2',
        OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
      });
      try {
        for (let i = 0; i < 30; i++) expect((await call(`${app.baseUrl}/api/users?limit=1`)).status).to.equal(200);
        expect(await untilDropped(app, 'queue_full')).to.be.greaterThan(0);
      } finally {
        await hung.close();
        await app.close();
      }
    });
  });
});
