import { expect } from 'chai';
import { useTestApp } from '../support/app.js';
import { parseMetrics, promtool, sumOf, type Sample } from '../support/prometheus.js';
import { call, postJson } from '../support/spec.js';

describe('GET /metrics (on METRICS_PORT)', () => {
  const suite = useTestApp();
  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const res = await fetch(suite.app.metricsUrl);
    const text = await res.text();
    return { text, samples: parseMetrics(text) };
  };
  const users = () => `${suite.app.baseUrl}/api/users`;

  before(async () => {
    // One of every kind of request, so every series exists before the checks.
    const created = await postJson(users(), { name: 'Metric', email: 'metric@example.com' });
    await postJson(users(), { name: 'Metric', email: 'metric@example.com' });
    await postJson(users(), { name: '' });
    await call(`${suite.app.baseUrl}${created.headers.get('location') ?? ''}`);
    await call(`${users()}?limit=5`);
    await call(`${suite.app.baseUrl}/no/such/path`);
    await call(`${suite.app.baseUrl}/ready`);
  });

  it('is not served on the application port, which the ingress and clients reach', async () => {
    const res = await call(`${suite.app.baseUrl}/metrics`);
    expect(res.status).to.equal(404);
    expect(JSON.stringify(res.body)).not.to.include('process_cpu');
  });

  it('serves nothing but GET /metrics on the metrics port', async () => {
    for (const [method, path] of [['GET', '/'], ['GET', '/api/users'], ['POST', '/metrics'], ['GET', '/health']] as const) {
      const res = await fetch(new URL(path, suite.app.metricsUrl), { method });
      expect(res.status, `${method} ${path}`).to.equal(404);
    }
  });

  it('passes promtool check metrics with no errors or lint warnings', async () => {
    const { text } = await scrape();
    const result = promtool(['check', 'metrics'], text);
    expect(result.output.trim()).to.equal('');
    expect(result.status).to.equal(0);
  });

  it('publishes the process defaults: CPU, memory, heap, GC and event-loop lag', async () => {
    // By family (# TYPE), not by sample: the GC histogram has no sample until the first collection.
    const families = new Set([...(await scrape()).text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(families, name).to.include(name);
    }
  });

  it('labels request latency by method, route template and status code', async () => {
    const count = (samples: Sample[], method: string, route: string, status: string) =>
      sumOf(samples, 'http_request_duration_seconds_count', { method, route, status_code: status });
    const series: [string, string, string][] = [
      ['POST', '/api/users', '201'],
      ['POST', '/api/users', '409'],
      ['GET', '/api/users/{id}', '200'],
      ['GET', 'unmatched', '404'],
    ];
    const before = (await scrape()).samples;
    const email = `latency-${Date.now()}@example.com`;
    const created = await postJson(users(), { name: 'Latency', email });
    await postJson(users(), { name: 'Latency', email });
    await call(`${suite.app.baseUrl}${created.headers.get('location') ?? ''}`);
    await call(`${suite.app.baseUrl}/no/such/path`);
    const after = (await scrape()).samples;
    expect(series.map(([m, r, s]) => count(after, m, r, s) - count(before, m, r, s))).to.deep.equal([1, 1, 1, 1]);
    expect(after.some((s) => s.name === 'http_request_duration_seconds_bucket' && s.labels.le === '0.005')).to.be.true;
  });

  it('counts requests in flight (the scrape, on its own port, is not one of them)', async () => {
    expect(sumOf((await scrape()).samples, 'http_requests_in_flight')).to.equal(0);
  });

  it('times database queries by operation', async () => {
    const { samples } = await scrape();
    for (const operation of ['users_create', 'users_get', 'users_list']) {
      expect(sumOf(samples, 'db_query_duration_seconds_count', { operation }), operation).to.be.at.least(1);
    }
  });

  it('reads pool saturation at scrape time', async () => {
    const { samples } = await scrape();
    expect(sumOf(samples, 'db_pool_max_connections')).to.equal(25);
    expect(samples.filter((s) => s.name === 'db_pool_connections').map((s) => s.labels.state).sort()).to.deep.equal(['free', 'used']);
    expect(sumOf(samples, 'db_pool_pending_acquires')).to.equal(0);
    expect(sumOf(samples, 'db_pool_acquire_duration_seconds_count')).to.be.at.least(1);
  });

  it('publishes rate limiter decisions by outcome', async () => {
    const outcomes = (await scrape()).samples.filter((s) => s.name === 'ratelimit_decisions_total').map((s) => s.labels.outcome).sort();
    expect(outcomes).to.deep.equal(['allowed', 'fallback_allowed', 'fallback_limited', 'limited']);
  });

  it('counts a created user once', async () => {
    const before = sumOf((await scrape()).samples, 'users_created_total');
    await postJson(users(), { name: 'Counted', email: `counted-${Date.now()}@example.com` });
    expect(sumOf((await scrape()).samples, 'users_created_total')).to.equal(before + 1);
  });

  it('counts a duplicate e-mail as a conflict, not a creation', async () => {
    const samplesBefore = (await scrape()).samples;
    await postJson(users(), { name: 'Again', email: 'metric@example.com' });
    const samplesAfter = (await scrape()).samples;
    expect(sumOf(samplesAfter, 'users_create_conflicts_total')).to.equal(sumOf(samplesBefore, 'users_create_conflicts_total') + 1);
    expect(sumOf(samplesAfter, 'users_created_total')).to.equal(sumOf(samplesBefore, 'users_created_total'));
  });

  it('counts validation failures by route', async () => {
    const before = sumOf((await scrape()).samples, 'validation_failures_total', { route: '/api/users/{id}' });
    await call(`${users()}/abc`);
    expect(sumOf((await scrape()).samples, 'validation_failures_total', { route: '/api/users/{id}' })).to.equal(before + 1);
  });

  it('keeps one route label for any number of unknown paths', async () => {
    const routes = (samples: Sample[]) => new Set(samples.filter((s) => s.name === 'http_request_duration_seconds_count').map((s) => s.labels.route));
    // The scrape's own series appears with the scrape after it: scrape twice so it is not taken for a new route.
    await scrape();
    const before = routes((await scrape()).samples);
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => call(`${suite.app.baseUrl}/random/${i + j}/${Math.random().toString(36)}`)));
    }
    const after = routes((await scrape()).samples);
    expect([...after].filter((r) => !before.has(r))).to.deep.equal([]);
    expect(after.has('unmatched')).to.be.true;
  });
});
