/**
 * The rate limiter's own CPU per decision, without HTTP: `limiter.consume()` as the middleware
 * calls it, through createRateLimiter with Redis (the production wiring: fallback wrapper, hooks,
 * metrics, ioredis options), against the in-process limiter alone. Each variant runs in a child
 * process of its own; the figure is that child's CPU time (user + system, ioredis' socket work
 * included) per decision. A shared, busy machine disturbs this far less than an HTTP benchmark.
 *
 *   npm run build && npx tsx bench/limiter-calls.ts -- --builds before=.cache/before/dist,after=dist
 *
 * `--concurrency` is the number of decisions in flight (the HTTP connections of a loaded server);
 * 1 shows the cost of a lone request, which no batching helps.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { createMetrics as CreateMetrics } from '../service/observability/metrics.js';
import type { createRateLimiter as CreateRateLimiter } from '../service/ratelimit/create-rate-limiter.js';

const { values: args } = parseArgs({
  options: {
    child: { type: 'string' },
    builds: { type: 'string', default: 'service=dist' },
    decisions: { type: 'string', default: '40000' },
    concurrency: { type: 'string', default: '1,50' },
    repetitions: { type: 'string', default: '5' },
    'redis-url': { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});

interface Child { dist: string; redis: boolean; decisions: number; concurrency: number }

/** One child: builds the limiter from a build's dist/, warms it up, then times `decisions` of them. */
async function child(spec: Child): Promise<void> {
  // The build under test, not this checkout's sources: its modules have the same shape.
  const { createRateLimiter } = (await import(pathToFileURL(resolve(spec.dist, 'service/ratelimit/create-rate-limiter.js')).href)) as { createRateLimiter: typeof CreateRateLimiter };
  const { createMetrics } = (await import(pathToFileURL(resolve(spec.dist, 'service/observability/metrics.js')).href)) as { createMetrics: typeof CreateMetrics };
  const { Registry } = await import('prom-client');
  const metrics = createMetrics(new Registry());
  const log = { info: () => undefined, warn: (...a: unknown[]) => { process.stderr.write(`${JSON.stringify(a)}\n`); } };
  const limiter = createRateLimiter({
    redisUrl: spec.redis ? args['redis-url'] : undefined,
    policy: { rps: 1_000_000, burst: 1_000_000 },
    // Generous: on a busy machine a 50 ms deadline falls back, and the run would measure the fallback.
    redisTimeoutMs: 1000,
    log,
    metrics,
    keyPrefix: `ratelimit-calls:${randomBytes(4).toString('hex')}:`,
  });
  while (spec.redis && limiter.health() !== 'ok') await new Promise((r) => setTimeout(r, 20));
  const run = async (n: number) => {
    let left = n;
    const worker = async () => {
      while (left-- > 0) {
        const decision = await limiter.consume('addr:127.0.0.1');
        if (!decision.allowed) throw new Error('refused: the policy should admit everything');
      }
    };
    await Promise.all(Array.from({ length: spec.concurrency }, worker));
  };
  await run(Math.min(10_000, spec.decisions));
  const before = process.cpuUsage();
  const started = performance.now();
  await run(spec.decisions);
  const cpu = process.cpuUsage(before);
  const seconds = (performance.now() - started) / 1000;
  const fallback = (await metrics.rateLimitDecisions.get()).values.filter((v) => String(v.labels.outcome).startsWith('fallback_') && v.value > 0);
  process.stdout.write(`${JSON.stringify({ cpuUs: (cpu.user + cpu.system) / spec.decisions, perSecond: spec.decisions / seconds, fallback: fallback.length > 0 })}\n`);
  await limiter.close();
}

function runChild(spec: Child): Promise<{ cpuUs: number; perSecond: number; fallback: boolean }> {
  return new Promise((done, fail) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
    proc.once('exit', (code) => {
      if (code !== 0) fail(new Error(`child exited ${String(code)}: ${out}`));
      else done(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { cpuUs: number; perSecond: number; fallback: boolean });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const builds = args.builds.split(',').map((pair) => pair.split('=') as [string, string]);
  const concurrencies = args.concurrency.split(',').map(Number);
  const decisions = Number(args.decisions);
  const rows: string[] = [];
  for (const concurrency of concurrencies) {
    const cells = new Map<string, number[]>();
    for (let rep = 0; rep < Number(args.repetitions); rep++) {
      // Alternating builds and modes, so the machine's drift hits all alike.
      for (const [name, dist] of builds) {
        for (const redis of [false, true]) {
          const r = await runChild({ dist, redis, decisions, concurrency });
          if (r.fallback) process.stderr.write(`  warning: ${name} fell back in-process during the run\n`);
          const label = `${name}|${redis ? 'redis' : 'local'}`;
          cells.set(label, [...(cells.get(label) ?? []), r.cpuUs]);
        }
      }
    }
    for (const [name] of builds) {
      const local = median(cells.get(`${name}|local`) ?? []);
      const redis = median(cells.get(`${name}|redis`) ?? []);
      rows.push(`| ${String(concurrency)} | ${name} | ${local.toFixed(1)} | ${redis.toFixed(1)} | ${(redis - local).toFixed(1)} |`);
    }
  }
  process.stdout.write(`\nlimiter.consume(), CPU µs per decision, ${args.decisions} decisions × ${args.repetitions} (median)\n`);
  process.stdout.write('| in flight | build | in-process | Redis | Redis − in-process |\n|---:|---|---:|---:|---:|\n');
  process.stdout.write(`${rows.join('\n')}\n`);
}

if (args.child) await child(JSON.parse(args.child) as Child);
else await main();
