/**
 * What the Redis rate limiter costs on the real endpoint: the built service, GET /api/users/{id},
 * with the limiter on (REDIS_URL set, a policy nothing exceeds, so every request pays the Redis
 * round trip and none is refused) and off (no REDIS_URL: the in-process limiter, no Redis), in one
 * run, alternating. Reports throughput and the server's CPU per request (user + system from
 * /proc/<pid>/stat ÷ requests), which a busy shared machine disturbs far less than throughput.
 *
 *   npm run build && npx tsx bench/limiter-cost.ts -- --duration 5 --repetitions 3
 *   … --builds before=/tmp/old/dist/service/main.js,after=dist/service/main.js   (before/after in one run)
 *   … --parallel          (off and on loaded at the same moment, sharing the CPUs: a fairer A/B on a noisy machine)
 *   … --redis-timeout 1s    (a busy machine misses 50 ms now and then; each fallback spoils the run)
 *   … --node-args="--cpu-prof --cpu-prof-dir=bench/results/profile"             (then bench/profile-summary.ts)
 *
 * Each build × {on, off} is one service process; all share one freshly seeded database of their
 * own. The difference "on − off" in CPU µs/request is the limiter's CPU cost per request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { PrivateRedis } from '../test/ratelimit/support.js';
import { chartRuntimeEnv, createBenchDatabase, freePort } from './harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./wrk/scenario.lua', import.meta.url));

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '2' },
    repetitions: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    rows: { type: 'string', default: '10000' },
    /** name=entry pairs; each build is measured with the limiter on and off. */
    builds: { type: 'string', default: 'service=dist/service/main.js' },
    /** Per server; four servers × 25 would take every PostgreSQL connection of a shared server. */
    'pool-max': { type: 'string', default: '12' },
    /**
     * RATE_LIMIT_REDIS_TIMEOUT of the "on" servers. The production default (50ms) is missed now and
     * then on a busy shared machine, and every fallback turns the run into a measure of the
     * in-process limiter; the CPU cost of a Redis decision does not depend on the deadline.
     */
    'redis-timeout': { type: 'string', default: '50ms' },
    'node-args': { type: 'string', default: '' },
    /** Load a build's "off" and "on" servers at the same time: on a noisy machine both then meet the same noise. */
    parallel: { type: 'boolean', default: false },
    'admin-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    /** Unset: a private redis-server of this run, so other users of a shared Redis neither slow it nor count in its stats. */
    'redis-url': { type: 'string', default: process.env.BENCH_REDIS_URL },
    out: { type: 'string', default: 'limiter-cost.json' },
  },
});
const duration = Number(args.duration);
const repetitions = Number(args.repetitions);
const builds = args.builds.split(',').map((pair) => {
  const [name, entry] = pair.split('=') as [string, string | undefined];
  if (!entry || !existsSync(`${ROOT}/${entry}`) && !existsSync(entry)) throw new Error(`--builds: ${pair}: no such entry (npm run build first)`);
  return { name, entry };
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const log = (line: string) => { process.stderr.write(`${line}\n`); };

/** A function, so TypeScript does not narrow exitCode across awaits. */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

interface Server { label: string; port: number; metricsPort: number; child: ChildProcess; stderr: string[] }

/** Decisions the in-process fallback took because Redis failed or was late (those requests measure the wrong thing). */
async function fallbackDecisions(server: Server): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${String(server.metricsPort)}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('ratelimit_decisions_total{outcome="fallback_')).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** Script calls Redis has run (EVAL and EVALSHA), to tell how many decisions each carried. */
async function scriptCalls(redisUrl: string): Promise<number> {
  const admin = new Redis(redisUrl);
  try {
    const stats = await admin.info('commandstats');
    return [...stats.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  } finally {
    admin.disconnect();
  }
}

async function start(label: string, entry: string, limiter: boolean, databaseUrl: string, redisUrl: string): Promise<Server> {
  const port = await freePort();
  const metricsPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    DATABASE_URL: databaseUrl,
    RATE_LIMIT_RPS: '1000000',
    RATE_LIMIT_BURST: '1000000',
    LOG_LEVEL: 'info',
    DB_POOL_MAX: args['pool-max'],
    ...chartRuntimeEnv(),
  };
  if (limiter) Object.assign(env, { REDIS_URL: redisUrl, RATE_LIMIT_REDIS_TIMEOUT: args['redis-timeout'] });
  else delete env.REDIS_URL;
  const argv = [...args['node-args'].split(' ').filter(Boolean), entry];
  const child = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => { stderr.push(chunk.toString('utf8')); });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!running(child)) throw new Error(`${label} exited: ${stderr.join('')}`);
    try {
      // "on" must really be deciding in Redis, or the run would measure the fallback.
      if ((await redisCheck(port)) === (limiter ? 'ok' : 'disabled')) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${label} not ready within 20 s: ${stderr.join('')}`);
    await sleep(100);
  }
  return { label, port, metricsPort, child, stderr };
}

async function stop(server: Server): Promise<void> {
  if (!running(server.child)) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (running(server.child)) server.child.kill('SIGKILL');
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The limiter's health as /ready reports it: ok (Redis), degraded (fallback), disabled (no Redis). */
async function redisCheck(port: number): Promise<string | undefined> {
  const res = await fetch(`http://127.0.0.1:${String(port)}/ready`);
  return ((await res.json()) as { checks?: { redis?: string } }).checks?.redis;
}

interface Run { rps: number; cpuUs: number; errors: number; non2xx: number; requests: number; fallback: number }

async function wrk(server: Server, seconds: number): Promise<Run> {
  const argv = ['-t1', '-c', args.connections, '-d', `${String(seconds)}s`, '--timeout', '5s', '-s', SCRIPT, `http://127.0.0.1:${String(server.port)}`];
  const child = spawn('wrk', argv, { env: { ...process.env, BENCH_SCENARIO: 'get', BENCH_MAX_ID: args.rows }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
  const pid = server.child.pid ?? 0;
  const before = cpuSeconds(pid);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const cpu = cpuSeconds(pid) - before;
  const line = out.split('\n').find((l) => l.startsWith('BENCHJSON '));
  if (code !== 0 || !line) throw new Error(`wrk failed (${String(code)}): ${out}`);
  const r = JSON.parse(line.slice('BENCHJSON '.length)) as { requests: number; duration_us: number; errors: Record<string, number> };
  const { status = 0, ...rest } = r.errors;
  return { rps: r.requests / (r.duration_us / 1e6), cpuUs: (cpu * 1e6) / Math.max(1, r.requests), errors: Object.values(rest).reduce((a, b) => a + b, 0), non2xx: status, requests: r.requests, fallback: 0 };
}

async function main(): Promise<void> {
  const db = await createBenchDatabase(args['admin-url'], Number(args.rows), 'users_limcost');
  const redis = args['redis-url'] === undefined ? await PrivateRedis.start() : { url: args['redis-url'], stop: () => Promise.resolve() };
  const servers: Server[] = [];
  const runs = new Map<string, Run[]>();
  try {
    for (const build of builds) {
      for (const on of [false, true]) servers.push(await start(`${build.name} ${on ? 'on' : 'off'}`, build.entry, on, db.url, redis.url));
    }
    for (const server of servers) await wrk(server, Number(args.warmup));
    for (let rep = 1; rep <= repetitions; rep++) {
      // Alternating, so a drift of the shared machine hits every server alike.
      // --parallel: a build's two servers under load at the same moment, so both meet the same machine.
      const rounds = args.parallel ? builds.map(({ name }) => servers.filter((s) => s.label.startsWith(`${name} `))) : servers.map((s) => [s]);
      for (const round of rounds) {
        await Promise.all(round.map(async (server) => {
          const on = server.label.endsWith(' on');
          const [calls, fallback] = on ? [await scriptCalls(redis.url), await fallbackDecisions(server)] : [0, 0];
          const run = await wrk(server, duration);
          let perCall = '';
          if (on) {
            run.fallback = (await fallbackDecisions(server)) - fallback;
            perCall = `  ${(run.requests / Math.max(1, (await scriptCalls(redis.url)) - calls)).toFixed(1)} decisions/Redis call${run.fallback ? `  FALLBACK ${String(run.fallback)}` : ''}`;
          }
          runs.set(server.label, [...(runs.get(server.label) ?? []), run]);
          log(`  rep ${String(rep)} ${server.label.padEnd(16)} ${run.rps.toFixed(0).padStart(6)} r/s  ${run.cpuUs.toFixed(0).padStart(4)} µs/req${perCall}${run.errors + run.non2xx ? `  ERRORS ${String(run.errors)} non-2xx ${String(run.non2xx)}` : ''}`);
        }));
      }
    }
  } finally {
    await Promise.all(servers.map(stop));
    await redis.stop();
    await db.drop();
  }
  const summary = builds.map(({ name }) => {
    const m = (label: string, pick: (r: Run) => number) => median((runs.get(label) ?? []).map(pick));
    const off = { rps: m(`${name} off`, (r) => r.rps), cpuUs: m(`${name} off`, (r) => r.cpuUs) };
    const on = { rps: m(`${name} on`, (r) => r.rps), cpuUs: m(`${name} on`, (r) => r.cpuUs) };
    // Ratio per repetition (adjacent runs), then the median: less sensitive to drift than a ratio of medians.
    const offRuns = runs.get(`${name} off`) ?? [];
    const ratio = median((runs.get(`${name} on`) ?? []).map((r, i) => r.rps / (offRuns[i]?.rps ?? NaN)));
    const fallback = (runs.get(`${name} on`) ?? []).reduce((sum, r) => sum + r.fallback, 0);
    return { build: name, off, on, ratio, limiterCpuUs: on.cpuUs - off.cpuUs, fallback };
  });
  process.stdout.write(`\nGET /api/users/{id}, wrk -t1 -c${args.connections}, ${String(repetitions)} × ${args.duration} s ${args.parallel ? 'off and on at once' : 'alternating'}, medians\n`);
  process.stdout.write('| build | off r/s | on r/s | on ÷ off | off CPU µs/req | on CPU µs/req | limiter CPU µs/req | fallback decisions |\n|---|---:|---:|---:|---:|---:|---:|---:|\n');
  for (const s of summary) {
    process.stdout.write(`| ${s.build} | ${s.off.rps.toFixed(0)} | ${s.on.rps.toFixed(0)} | ${s.ratio.toFixed(2)} | ${s.off.cpuUs.toFixed(0)} | ${s.on.cpuUs.toFixed(0)} | ${s.limiterCpuUs.toFixed(0)} | ${String(s.fallback)} |\n`);
  }
  mkdirSync(`${ROOT}/bench/results`, { recursive: true });
  writeFileSync(`${ROOT}/bench/results/${args.out}`, `${JSON.stringify({ date: new Date().toISOString(), args, summary, runs: Object.fromEntries(runs) }, null, 2)}\n`);
}

await main();
