import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import type { RateLimitOutcome } from '../../service/ratelimit/limiter.js';
import { startTestApp, type TestApp } from '../support/app.js';

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

/**
 * The real application (createApp, as main.ts builds it) with a tight limiter on `redisUrl`. The
 * Redis timeout is generous unless a test is about it: on a loaded CI machine a 50 ms Redis answer
 * is not rare, and a fallback decision would make the shared-budget tests flake.
 */
export async function startLimitedApp(databaseUrl: string, redisUrl: string, env: Record<string, string> = {}): Promise<TestApp> {
  const app = await startTestApp(databaseUrl, { REDIS_URL: redisUrl, RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '10', RATE_LIMIT_REDIS_TIMEOUT: '1s', ...env });
  await waitFor(() => app.rateLimiter.health() === 'ok', 5000, 'the limiter to reach Redis');
  return app;
}

/** The limiter's decisions so far with `outcome`, from the app's own counter. */
export async function decisions(app: TestApp, outcome: RateLimitOutcome): Promise<number> {
  return (await app.metrics.rateLimitDecisions.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

export async function redisErrors(app: TestApp): Promise<number> {
  return (await app.metrics.rateLimitRedisErrors.get()).values[0]?.value ?? 0;
}

export async function flushRedis(redisUrl: string): Promise<void> {
  const admin = new Redis(redisUrl);
  try {
    await admin.flushall();
  } finally {
    admin.disconnect();
  }
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

  /** Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a stalled host. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** Kills the server as a crash would (SIGKILL), and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    // A frozen process dies of SIGKILL too; SIGCONT only spares the wait for the scheduler.
    child.kill('SIGCONT');
    await exited;
    this.child = undefined;
  }
}
