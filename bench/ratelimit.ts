/**
 * What the rate limiter costs: the same trivial endpoint (Koa, small JSON) with the limiter off and
 * on, in one run. "On" is the production path (createRateLimiter → Redis with fallback, the Koa
 * middleware) with a policy no request can exceed, so every request pays the Redis round trip
 * and none is refused.
 *
 *   npx tsx bench/ratelimit.ts            (REDIS_URL defaults to redis://127.0.0.1:6379)
 *
 * Each server runs in its own child process so that autocannon (this process) does not share an
 * event loop with it. Order: warm-up of both, then 3 interleaved repetitions (off, on, off, on, …)
 * so that machine drift hits both alike; medians are compared. Goal: on ≥ 0.85 × off throughput,
 * p99 added ≤ 2 ms. Writes bench/results/ratelimit.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { rateLimit } from '../service/middleware/rate-limit.js';
import { createMetrics } from '../service/observability/metrics.js';
import { createRateLimiter } from '../service/ratelimit/create-rate-limiter.js';
import { RefusalMemory } from '../service/ratelimit/refusals.js';
import { autocannon } from './autocannon.js';

type Variant = 'off' | 'on';


const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? '50');
const DURATION_S = Number(process.env.BENCH_DURATION ?? '5');
const WARMUP_S = 3;
const REPETITIONS = 3;

interface Stats {
  health: string;
  decisions: Record<string, number>;
  redisErrors: number;
}

type FromChild = { type: 'listening'; port: number } | { type: 'stats'; stats: Stats };

// ---------------------------------------------------------------------------- server (child)

function serve(variant: Variant): void {
  const app = new Koa();
  const metrics = createMetrics(new Registry());
  const limiter = createRateLimiter({
    redisUrl: REDIS_URL,
    // Nothing is ever refused: the benchmark measures the cost of asking, not of refusing.
    policy: { rps: 1_000_000, burst: 1_000_000 },
    redisTimeoutMs: 50,
    log: pino({ level: 'warn' }),
    metrics,
    keyPrefix: `ratelimit-bench:${randomBytes(4).toString('hex')}:`,
  });
  if (variant === 'on') app.use(rateLimit({ limiter, scope: 'client', refusals: new RefusalMemory(), onRecalledRefusal: () => undefined }));
  app.use((ctx) => {
    ctx.body = { id: 1, name: 'Ada Lovelace', email: 'ada@example.com' };
  });
  const server = app.listen(0, '127.0.0.1', () => {
    send({ type: 'listening', port: (server.address() as AddressInfo).port });
  });
  process.on('message', (message: { type: string }) => {
    if (message.type !== 'stats') return;
    void (async () => {
      const decisions: Record<string, number> = {};
      for (const v of (await metrics.rateLimitDecisions.get()).values) decisions[String(v.labels.outcome)] = v.value;
      const redisErrors = (await metrics.rateLimitRedisErrors.get()).values[0]?.value ?? 0;
      send({ type: 'stats', stats: { health: limiter.health(), decisions, redisErrors } });
    })();
  });
}

function send(message: FromChild): void {
  process.send?.(message);
}

// ---------------------------------------------------------------------------- driver (parent)

interface Server {
  variant: Variant;
  child: ChildProcess;
  url: string;
}

function nextMessage<T extends FromChild['type']>(child: ChildProcess, type: T): Promise<Extract<FromChild, { type: T }>> {
  return new Promise((resolve) => {
    const listener = (message: FromChild) => {
      if (message.type !== type) return;
      child.off('message', listener);
      resolve(message as Extract<FromChild, { type: T }>);
    };
    child.on('message', listener);
  });
}

async function startServer(variant: Variant): Promise<Server> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', variant], { execArgv: ['--import', 'tsx'] });
  const { port } = await nextMessage(child, 'listening');
  return { variant, child, url: `http://127.0.0.1:${port}/api/ping` };
}

interface Run {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, seconds: number): Promise<Run> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

async function main(): Promise<void> {
  const servers = [await startServer('off'), await startServer('on')];
  const runs: Record<Variant, Run[]> = { off: [], on: [] };
  try {
    for (const server of servers) await load(server.url, WARMUP_S);
    for (let rep = 1; rep <= REPETITIONS; rep++) {
      for (const server of servers) {
        const run = await load(server.url, DURATION_S);
        runs[server.variant].push(run);
        process.stderr.write(`  rep ${rep} ${server.variant.padEnd(3)} ${run.requestsPerSecond.toFixed(0)} req/s p50 ${run.p50Ms} ms p99 ${run.p99Ms} ms\n`);
      }
    }
    const on = servers.find((s) => s.variant === 'on');
    if (!on) throw new Error('no limited server');
    on.child.send({ type: 'stats' });
    const { stats } = await nextMessage(on.child, 'stats');

    const summary = (variant: Variant) => ({
      requestsPerSecond: median(runs[variant].map((r) => r.requestsPerSecond)),
      p50Ms: median(runs[variant].map((r) => r.p50Ms)),
      p99Ms: median(runs[variant].map((r) => r.p99Ms)),
    });
    const off = summary('off');
    const onSummary = summary('on');
    const ratio = onSummary.requestsPerSecond / off.requestsPerSecond;
    const p99AddedMs = onSummary.p99Ms - off.p99Ms;
    const failures = [...runs.off, ...runs.on].reduce((n, r) => n + r.non2xx + r.errors, 0);
    const fallback = (stats.decisions.fallback_allowed ?? 0) + (stats.decisions.fallback_limited ?? 0);
    // A run where Redis was bypassed, or anything was refused, would measure the wrong thing.
    const valid = failures === 0 && fallback === 0 && stats.redisErrors === 0 && stats.health === 'ok';
    const goalMet = ratio >= 0.85 && p99AddedMs <= 2;

    const row = (name: string, s: typeof off) =>
      `| ${name.padEnd(12)} | ${s.requestsPerSecond.toFixed(0).padStart(8)} | ${String(s.p50Ms).padStart(7)} | ${String(s.p99Ms).padStart(7)} |`;
    console.log(`\nrate limiter overhead: ${CONNECTIONS} connections, ${DURATION_S} s × ${REPETITIONS} each, medians\n`);
    console.log('| limiter      |    req/s | p50 ms  | p99 ms  |');
    console.log('|--------------|---------:|--------:|--------:|');
    console.log(row('off', off));
    console.log(row('on (Redis)', onSummary));
    console.log(`\nthroughput ratio on/off: ${ratio.toFixed(3)} (goal ≥ 0.85); p99 added: ${p99AddedMs.toFixed(2)} ms (goal ≤ 2)`);
    console.log(`redis decisions during the run: ${String(stats.decisions.allowed ?? 0)} allowed, fallback ${fallback}, errors ${stats.redisErrors}`);
    console.log(valid ? (goalMet ? 'goal met' : 'GOAL MISSED') : 'INVALID RUN: requests failed or Redis was bypassed');

    const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'ratelimit.json');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      out,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          connections: CONNECTIONS,
          durationSeconds: DURATION_S,
          repetitions: REPETITIONS,
          off,
          on: onSummary,
          ratio,
          p99AddedMs,
          runs,
          limiterStats: stats,
          valid,
          goalMet,
        },
        null,
        2,
      ) + '\n',
    );
    console.log(`written ${out}`);
    process.exitCode = valid ? 0 : 1;
  } finally {
    for (const server of servers) server.child.kill();
  }
}

const serveIndex = process.argv.indexOf('--serve');
if (serveIndex >= 0) serve(process.argv[serveIndex + 1] === 'on' ? 'on' : 'off');
else await main();
