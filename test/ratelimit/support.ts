import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import Koa from 'koa';
import { Registry } from 'prom-client';
import { rateLimit } from '../../service/middleware/rate-limit.js';
import { problemDetails } from '../../service/middleware/problem.js';
import { createLogger } from '../../service/observability/logger.js';
import { createMetrics, type Metrics } from '../../service/observability/metrics.js';
import { createRateLimiter } from '../../service/ratelimit/create-rate-limiter.js';
import type { RateLimiter, RateLimitOutcome, RateLimitPolicy } from '../../service/ratelimit/limiter.js';

/** The machine's Redis (CI provides one); override with TEST_REDIS_URL. */
export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key namespace per run, so concurrent runs and leftovers never share a bucket. */
export function uniqueKeyPrefix(): string {
  return `ratelimit-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export interface LimitedApp {
  baseUrl: string;
  limiter: RateLimiter;
  metrics: Metrics;
  logs: Record<string, unknown>[];
  /**
   * performance.now() around each /api request's passage through the app (limiter included): the
   * limiter's decision for it was taken somewhere between `start` and `end`.
   */
  timings: { start: number; end: number }[];
  decisions(outcome: RateLimitOutcome): Promise<number>;
  redisErrors(): Promise<number>;
  close(): Promise<void>;
}

export interface LimitedAppOptions {
  policy: RateLimitPolicy;
  /** Undefined: in-process limiter only. */
  redisUrl: string | undefined;
  keyPrefix?: string;
  scope?: 'client' | 'global';
  trustProxyHops?: number;
  redisTimeoutMs?: number;
}

/**
 * A minimal app with the service's proxy trust settings, problem details and the limiter from
 * the production factory. The probe-like routes are mounted *after* the limiter on purpose, so
 * that tests show the middleware itself leaves them alone (the real app also mounts them before).
 */
export async function startLimitedApp(options: LimitedAppOptions): Promise<LimitedApp> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger('info', sink);
  const metrics = createMetrics(new Registry());
  const limiter = createRateLimiter({
    redisUrl: options.redisUrl,
    policy: options.policy,
    // Generous unless a test is about the timeout: on a loaded CI machine a 50 ms Redis answer is
    // not rare, and a fallback decision would make the shared-budget tests flake.
    redisTimeoutMs: options.redisTimeoutMs ?? 1_000,
    log,
    metrics,
    keyPrefix: options.keyPrefix ?? uniqueKeyPrefix(),
  });
  const hops = options.trustProxyHops ?? 0;
  const app = new Koa();
  app.proxy = hops > 0;
  app.maxIpsCount = hops;
  app.silent = true;
  const timings: { start: number; end: number }[] = [];
  app.use(async (ctx, next) => {
    const start = performance.now();
    await next();
    if (ctx.path.startsWith('/api')) timings.push({ start, end: performance.now() });
  });
  app.use(problemDetails(log));
  app.use(rateLimit({ limiter, scope: options.scope ?? 'client' }));
  app.use(async (ctx) => {
    if (ctx.path === '/metrics') {
      ctx.type = 'text/plain';
      ctx.body = await metrics.registry.metrics();
    } else if (ctx.path === '/ready') {
      ctx.body = { status: 'ready', checks: { redis: limiter.health() } };
    } else {
      ctx.body = { ok: true, path: ctx.path };
    }
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => { resolve(s); });
  });
  const counter = async (metric: 'rateLimitDecisions' | 'rateLimitRedisErrors', outcome?: RateLimitOutcome) => {
    const { values } = await metrics[metric].get();
    return values.find((v) => outcome === undefined || v.labels.outcome === outcome)?.value ?? 0;
  };
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    limiter,
    metrics,
    logs,
    timings,
    decisions: (outcome) => counter('rateLimitDecisions', outcome),
    redisErrors: () => counter('rateLimitRedisErrors'),
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await limiter.close();
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: unknown;
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) as unknown : text };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A private, throwaway redis-server (no persistence) that a test may stop and start again. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => { reject(new Error(`redis-server exited with ${String(code)}: ${out}`)); });
    });
  }

  /** Kills the server as a crash would (SIGKILL), and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}
