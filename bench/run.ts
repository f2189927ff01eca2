/**
 * `npm run bench`: the service against the physical limit of one Node process, in one run.
 *
 * Servers, each its own child process, on one freshly created and seeded database:
 *   baseline  node:http + pg Pool (bench/baseline/server.ts)
 *   naive     Koa + @koa/router + @koa/bodyparser + knex (bench/naive/server.ts)
 *   service   the built service, `node dist/service/main.js`, as it ships: bearer-token
 *             authentication against a local issuer (bench/issuer.ts; one token reused by every
 *             request), access log, metrics, and the Redis limiter on (policy high enough that
 *             nothing is refused). Its pino lines go to stdout as in production; the child's
 *             stdout is /dev/null, so formatting and write() are paid. Tracing off.
 *   nolimit   the same service without REDIS_URL: the in-process limiter only, so no Redis round
 *             trip (GET by id only; the reference of the limiter-cost goal)
 *   noauth, nolog: the same service without authentication (no AUTH_ISSUER), or without its access
 *             lines (LOG_LEVEL=warn); with nolimit, what each feature costs (GET by id only)
 *   before    another build of the service (--before-entry), same environment: before/after in one run
 *   traced10, traced100: the service with tracing on (bench/tracing.ts; GET by id only)
 * Load: wrk on loopback (see bench/wrk/scenario.lua), the same requests (token included) for all.
 *
 *   npm run bench -- --duration 30 --repetitions 5 --connections 50
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import { chartRuntimeEnv, createBenchDatabase, freePort } from './harness.js';
import { POOL_MAX } from './shared.js';
import { startIssuer, type BenchIssuer } from './issuer.js';
import { droppedSpans, isTraced, startSink, tracingEnv, TRACED_SERVERS, type Sink } from './tracing.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Read once: every service of the run gets the chart's runtime settings. */
const CHART_RUNTIME_ENV = chartRuntimeEnv();
const SCRIPT = fileURLToPath(new URL('./wrk/scenario.lua', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '2' },
    repetitions: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    'rate-fraction': { type: 'string', default: '0.7' },
    scrapes: { type: 'string', default: '40' },
    scenarios: { type: 'string', default: 'get,list,post,patch' },
    servers: { type: 'string', default: 'baseline,naive,service,nolimit,noauth,nolog,traced10,traced100' },
    rows: { type: 'string', default: '10000' },
    'admin-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'redis-url': { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'keep-db': { type: 'boolean', default: false },
    /** Maximum throughput and CPU only, no fixed-rate runs: for quick before/after comparisons. */
    'max-only': { type: 'boolean', default: false },
    'service-entry': { type: 'string', default: 'dist/service/main.js' },
    /** Another build of the service (e.g. an older commit's dist/service/main.js): adds the `before` server. */
    'before-entry': { type: 'string' },
    out: { type: 'string', default: 'latest.json' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`usage: npm run bench -- [--duration s] [--warmup s] [--repetitions n] [--connections n] [--threads n]
  [--rate-fraction 0.7] [--scrapes n] [--scenarios get,list,post,patch,health]
  [--servers baseline,naive,service,nolimit,noauth,nolog,traced10,traced100] [--rows 10000] [--admin-url postgres://…]
  [--redis-url redis://…] [--keep-db] [--max-only] [--service-entry dist/service/main.js]
  [--before-entry /tmp/perf-before/dist/service/main.js] [--out latest.json]\n`);
  process.exit(0);
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${value}`);
  return n;
}
const opts = {
  duration: positive('duration', args.duration),
  warmup: Number(args.warmup),
  repetitions: Math.round(positive('repetitions', args.repetitions)),
  connections: Math.round(positive('connections', args.connections)),
  threads: Math.round(positive('threads', args.threads)),
  rateFraction: positive('rate-fraction', args['rate-fraction']),
  scrapes: Math.round(Number(args.scrapes)),
  rows: Math.round(positive('rows', args.rows)),
};

const SERVER_NAMES = ['baseline', 'naive', 'service', 'before', 'nolimit', 'noauth', 'nolog', 'traced10', 'traced100'] as const;
type ServerName = (typeof SERVER_NAMES)[number];
/** The service without one feature each: the feature's cost is the service's CPU per request minus theirs. */
const WITHOUT_FEATURE = { nolimit: 'the Redis limiter (in-process instead)', noauth: 'authentication', nolog: 'the access log' } as const;
const isAblation = (name: ServerName): name is keyof typeof WITHOUT_FEATURE => name in WITHOUT_FEATURE;
/** Builds of the service (dist/service/main.js or --before-entry), started with the service's environment. */
const isService = (name: ServerName) => name === 'service' || name === 'before' || isAblation(name) || isTraced(name);
/** Variants measured on GET by id only, the scenario their goals name. */
const getOnly = (name: ServerName) => isAblation(name) || isTraced(name);
const SCENARIOS = {
  get: 'GET /api/users/{id}',
  list: 'GET /api/users?limit=20',
  post: 'POST /api/users',
  patch: 'PATCH /api/users/{id}',
  health: 'GET /health',
} as const;
type Scenario = keyof typeof SCENARIOS;
/** The API's operations, the scenarios the issue's floor (≥ 1.0 × naive) applies to. */
const API_SCENARIOS: readonly Scenario[] = ['get', 'list', 'post', 'patch'];
const serverNames = [...args.servers.split(','), ...(args['before-entry'] ? ['before'] : [])]
  .filter((s, i, all): s is ServerName => (SERVER_NAMES as readonly string[]).includes(s) && all.indexOf(s) === i)
  .filter((s) => s !== 'before' || args['before-entry'] !== undefined);
const scenarios = args.scenarios.split(',').filter((s): s is Scenario => s in SCENARIOS);
if (!serverNames.includes('baseline')) throw new Error('--servers must include baseline (the fixed rate and the ratios derive from it)');

const log = (line: string) => { process.stderr.write(`${line}\n`); };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number);
};

// ---------------------------------------------------------------- database

// ---------------------------------------------------------------- servers

interface RunningServer {
  name: ServerName;
  port: number;
  /** The service's METRICS_PORT (GET /metrics); unused by the reference servers. */
  metricsPort: number;
  child: ChildProcess;
  stderr: string[];
}

/** A function, so TypeScript does not narrow exitCode across awaits. */
function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function startServer(name: ServerName, databaseUrl: string, redisUrl: string, sink: Sink, issuer: BenchIssuer): Promise<RunningServer> {
  const port = await freePort();
  const metricsPort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production', PORT: String(port), DATABASE_URL: databaseUrl };
  let argv: string[];
  if (isService(name)) {
    Object.assign(env, {
      ...(name === 'noauth' ? {} : issuer.env),
      // Every request pays for the limiter's Redis round trip; none is refused. Without REDIS_URL
      // (nolimit) the service decides in-process: the same middleware, no round trip.
      ...(name === 'nolimit' ? {} : { REDIS_URL: redisUrl }),
      // Each service scrapes on a port of its own (two on the default 9464 would collide).
      METRICS_PORT: String(metricsPort),
      RATE_LIMIT_RPS: '1000000',
      RATE_LIMIT_BURST: '1000000',
      LOG_LEVEL: name === 'nolog' ? 'warn' : 'info',
      DB_POOL_MAX: String(POOL_MAX),
      ...CHART_RUNTIME_ENV,
    });
    if (isTraced(name)) Object.assign(env, tracingEnv(name, sink.url));
    const entry = name === 'before' ? args['before-entry'] ?? '' : args['service-entry'];
    argv = [...(process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean), entry];
  } else {
    argv = ['--import', 'tsx', `bench/${name}/server.ts`];
  }
  // stdout → /dev/null: the service logs one JSON line per request to stdout, as in production.
  const child = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => { stderr.push(chunk.toString('utf8')); });
  const server = { name, port, metricsPort, child, stderr };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!alive(child)) throw new Error(`${name} exited with ${String(child.exitCode)}: ${stderr.join('')}`);
    try {
      const res = await fetch(`http://127.0.0.1:${String(port)}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name} did not answer /health within 20 s: ${stderr.join('')}`);
    await sleep(100);
  }
  return server;
}

async function stopServer(server: RunningServer): Promise<void> {
  if (!alive(server.child)) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await Promise.race([exited, sleep(isService(server.name) ? 8_000 : 3_000)]);
  if (alive(server.child)) server.child.kill('SIGKILL');
}

/**
 * Every server must answer the same requests (the bench's token included) with the same statuses and
 * JSON shapes, or the comparison means nothing; a service that refused the token would fail here.
 */
async function checkShapes(servers: RunningServer[], token: string): Promise<void> {
  const authorization = { Authorization: `Bearer ${token}` };
  const shape = (value: unknown): unknown =>
    Array.isArray(value) ? value.slice(0, 1).map(shape)
      : value !== null && typeof value === 'object' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]).sort())
        : typeof value;
  const probes: { label: string; path: string; init?: RequestInit; status: number }[] = [
    { label: 'get', path: '/api/users/1', init: { headers: authorization }, status: 200 },
    { label: 'list', path: '/api/users?limit=20', init: { headers: authorization }, status: 200 },
    { label: 'health', path: '/health', status: 200 },
  ];
  for (const probe of probes) {
    const seen: string[] = [];
    for (const server of servers) {
      const res = await fetch(`http://127.0.0.1:${String(server.port)}${probe.path}`, probe.init);
      if (res.status !== probe.status) throw new Error(`${server.name} ${probe.path}: status ${String(res.status)}`);
      seen.push(JSON.stringify(shape(await res.json())));
    }
    if (new Set(seen).size !== 1) throw new Error(`${probe.label}: servers answer different shapes:\n${seen.join('\n')}`);
  }
  const posted: string[] = [];
  const patched: string[] = [];
  for (const server of servers) {
    const res = await fetch(`http://127.0.0.1:${String(server.port)}/api/users`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...authorization },
      body: JSON.stringify({ name: 'Shape Check', email: `shape-${server.name}-${String(process.pid)}@bench.example` }),
    });
    const location = res.headers.get('location');
    if (res.status !== 201 || !location) throw new Error(`${server.name} POST: status ${String(res.status)}`);
    posted.push(JSON.stringify(shape(await res.json())));
    // A new user is at version 1 on every server: the ETag the PATCH scenario's If-Match names.
    const patch = await fetch(`http://127.0.0.1:${String(server.port)}${location}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/merge-patch+json', 'If-Match': '"1"', ...authorization },
      body: JSON.stringify({ name: 'Shape Patched' }),
    });
    if (patch.status !== 200 || patch.headers.get('etag') !== '"2"') throw new Error(`${server.name} PATCH: status ${String(patch.status)}, ETag ${String(patch.headers.get('etag'))}`);
    patched.push(JSON.stringify(shape(await patch.json())));
  }
  if (new Set(posted).size !== 1) throw new Error(`post: servers answer different shapes:\n${posted.join('\n')}`);
  if (new Set(patched).size !== 1) throw new Error(`patch: servers answer different shapes:\n${patched.join('\n')}`);
}

/** Writes every user's row version for the PATCH scenario's If-Match (bench/wrk/scenario.lua). */
async function writeVersions(db: Knex, file: string): Promise<void> {
  const rows = await db<{ id: number; version: number }>('users').select('id', 'version').where('id', '<=', opts.rows);
  writeFileSync(file, rows.map((r) => `${String(r.id)} ${String(r.version)}`).join('\n') + '\n');
}

// ---------------------------------------------------------------- load

interface WrkResult {
  requests: number;
  duration_us: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latency_us: { p50: number; p95: number; p99: number; max: number; mean: number };
}

interface RunResult {
  rps: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  errors: number;
  rssMaxMb: number;
  /** The server's user+system CPU time per request (wrk's connection setup included), in ms. */
  cpuMsPerRequest: number;
}

let runCounter = 0;
/** What every wrk run sends: the issuer's token, and for PATCH the users' current versions. */
const load: { token: string; versions: Knex | undefined; versionsFile: string } = { token: '', versions: undefined, versionsFile: `${tmpdir()}/users-bench-versions-${String(process.pid)}.txt` };

function readRssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** User + system CPU seconds of a process so far (clock ticks of 10 ms). */
function readCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** One wrk run against one server; samples the server's RSS every 250 ms while it lasts. */
async function wrk(server: RunningServer, scenario: Scenario, seconds: number, rate = 0, during?: () => Promise<void>): Promise<RunResult> {
  runCounter += 1;
  if (scenario === 'patch' && load.versions) await writeVersions(load.versions, load.versionsFile);
  const env = {
    ...process.env,
    BENCH_SCENARIO: scenario,
    BENCH_PREFIX: `b${String(process.pid)}r${String(runCounter)}${server.name}`,
    BENCH_RATE: String(Math.round(rate)),
    BENCH_THREADS: String(opts.threads),
    BENCH_MAX_ID: String(opts.rows),
    BENCH_TOKEN: load.token,
    BENCH_VERSIONS: load.versionsFile,
  };
  const argv = ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${String(seconds)}s`, '--timeout', '5s', '-s', SCRIPT, `http://127.0.0.1:${String(server.port)}`];
  const child = spawn('wrk', argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let rssMax = 0;
  const pid = server.child.pid ?? 0;
  const cpuBefore = readCpuSeconds(pid);
  const sampler = setInterval(() => { rssMax = Math.max(rssMax, readRssMb(pid)); }, 250);
  const extra = during?.();
  const code = await exited;
  clearInterval(sampler);
  const cpuSeconds = readCpuSeconds(pid) - cpuBefore;
  await extra;
  const line = out.split('\n').find((l) => l.startsWith('BENCHJSON '));
  if (code !== 0 || !line) throw new Error(`wrk failed (${String(code)}): ${out}`);
  const r = JSON.parse(line.slice('BENCHJSON '.length)) as WrkResult;
  const e = r.errors;
  return {
    rps: r.requests / (r.duration_us / 1e6),
    p50Ms: r.latency_us.p50 / 1000,
    p95Ms: r.latency_us.p95 / 1000,
    p99Ms: r.latency_us.p99 / 1000,
    errors: e.connect + e.read + e.write + e.status + e.timeout,
    rssMaxMb: rssMax,
    cpuMsPerRequest: (cpuSeconds * 1000) / Math.max(1, r.requests),
  };
}

/** Times `count` GET /metrics, evenly spread over `seconds`, each on a fresh connection as Prometheus' scraper would be. */
async function scrapeTimes(server: RunningServer, seconds: number, count: number): Promise<number[]> {
  const times: number[] = [];
  const gap = (seconds * 1000 * 0.8) / Math.max(1, count);
  await sleep(seconds * 100);
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const res = await fetch(`http://127.0.0.1:${String(server.metricsPort)}/metrics`, { headers: { Connection: 'close' } });
    const text = await res.text();
    times.push(performance.now() - start);
    if (!res.ok || !text.includes('http_request_duration_seconds')) throw new Error(`/metrics answered ${String(res.status)}`);
    await sleep(gap);
  }
  return times;
}

// ---------------------------------------------------------------- report

type PerServer<T> = Partial<Record<ServerName, T>>;

interface ScenarioReport {
  scenario: Scenario;
  label: string;
  max: PerServer<{ rps: number; cpuUsPerRequest: number; runs: RunResult[] }>;
  fixedRate: { rate: number; results: PerServer<{ p50Ms: number; p95Ms: number; p99Ms: number; achievedRps: number; cpuUsPerRequest: number; runs: RunResult[] }> };
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(rows[0] ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const build = spawnSync('node', ['-e', `process.exit(require("node:fs").existsSync(${JSON.stringify(args['service-entry'])}) ? 0 : 1)`], { cwd: ROOT });
  if (build.status !== 0) throw new Error(`${args['service-entry']} is missing: run \`npm run build\` (npm run bench does)`);
  const started = new Date();
  const loadAverageAtStart = loadavg();
  if ((loadAverageAtStart[0] ?? 0) > cpus().length * 0.5) log(`bench: warning: load average ${fmt(loadAverageAtStart[0], 2)} on ${String(cpus().length)} CPUs; other work will skew the numbers`);
  log(`bench: ${String(opts.repetitions)} × ${String(opts.duration)} s per run, ${String(opts.connections)} connections, wrk -t${String(opts.threads)}`);
  const db = await createBenchDatabase(args['admin-url'], opts.rows, 'users_bench');
  log(`bench: database ${db.name} seeded with ${String(opts.rows)} users`);
  const servers: RunningServer[] = [];
  const sink = await startSink();
  const issuer = await startIssuer();
  load.token = issuer.token;
  // One connection, taken before the servers fill the pools, reads the versions before each PATCH run.
  load.versions = knexFactory({ client: 'pg', connection: db.url, pool: { min: 1, max: 1 } });
  await load.versions.raw('select 1');
  const dropped: PerServer<number> = {};
  const serversFor = (scenario: Scenario) => servers.filter((s) => scenario === 'get' || !getOnly(s.name));
  const reports: ScenarioReport[] = [];
  const scrape: { underMaxLoad?: number[]; underFixedRate?: number[]; idle?: number[] } = {};
  const rssMax: PerServer<number> = {};
  // Once, whether the run ends, fails or is interrupted: no server, database or connection is left behind.
  let cleaning: Promise<void> | undefined;
  const cleanUp = () => (cleaning ??= (async () => {
    await Promise.all(servers.map(stopServer));
    await sink.close();
    await issuer.close();
    await load.versions?.destroy();
    rmSync(load.versionsFile, { force: true });
    if (args['keep-db']) log(`bench: kept database ${db.name}`);
    else await db.drop();
  })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { log(`bench: ${signal}, cleaning up`); void cleanUp().finally(() => process.exit(130)); });
  }
  try {
    for (const name of serverNames) servers.push(await startServer(name, db.url, args['redis-url'], sink, issuer));
    await checkShapes(servers, issuer.token);
    const service = servers.find((s) => s.name === 'service');
    if (service && opts.scrapes > 0) scrape.idle = await scrapeTimes(service, 1, 10);

    for (const scenario of scenarios) {
      const report: ScenarioReport = { scenario, label: SCENARIOS[scenario], max: {}, fixedRate: { rate: 0, results: {} } };
      if (opts.warmup > 0) for (const server of serversFor(scenario)) await wrk(server, scenario, opts.warmup);
      const maxRuns: PerServer<RunResult[]> = {};
      for (let rep = 0; rep < opts.repetitions; rep++) {
        // Interleaved, so a drift of the machine (another tenant, autovacuum) hits all three alike.
        for (const server of serversFor(scenario)) {
          const result = await wrk(server, scenario, opts.duration);
          (maxRuns[server.name] ??= []).push(result);
          rssMax[server.name] = Math.max(rssMax[server.name] ?? 0, result.rssMaxMb);
          log(`  ${scenario} max  ${server.name.padEnd(8)} rep ${String(rep + 1)}: ${fmt(result.rps)} r/s  p99 ${fmt(result.p99Ms, 2)} ms  cpu ${fmt(result.cpuMsPerRequest * 1000)} µs/req${result.errors ? `  ERRORS ${String(result.errors)}` : ''}`);
        }
      }
      for (const [name, runs] of Object.entries(maxRuns) as [ServerName, RunResult[]][]) {
        report.max[name] = { rps: median(runs.map((r) => r.rps)), cpuUsPerRequest: median(runs.map((r) => r.cpuMsPerRequest * 1000)), runs };
      }
      const rate = opts.rateFraction * (report.max.baseline?.rps ?? 0);
      report.fixedRate.rate = rate;
      const rateRuns: PerServer<RunResult[]> = {};
      for (let rep = 0; rep < (args['max-only'] ? 0 : opts.repetitions); rep++) {
        for (const server of serversFor(scenario)) {
          const result = await wrk(server, scenario, opts.duration, rate);
          (rateRuns[server.name] ??= []).push(result);
          log(`  ${scenario} @${fmt(rate)} ${server.name.padEnd(8)} rep ${String(rep + 1)}: ${fmt(result.rps)} r/s  p50 ${fmt(result.p50Ms, 2)}  p95 ${fmt(result.p95Ms, 2)}  p99 ${fmt(result.p99Ms, 2)} ms${result.errors ? `  ERRORS ${String(result.errors)}` : ''}`);
        }
      }
      for (const [name, runs] of Object.entries(rateRuns) as [ServerName, RunResult[]][]) {
        report.fixedRate.results[name] = {
          p50Ms: median(runs.map((r) => r.p50Ms)),
          p95Ms: median(runs.map((r) => r.p95Ms)),
          p99Ms: median(runs.map((r) => r.p99Ms)),
          achievedRps: median(runs.map((r) => r.rps)),
          cpuUsPerRequest: median(runs.map((r) => r.cpuMsPerRequest * 1000)),
          runs,
        };
      }
      if (scenario === 'get' && service && opts.scrapes > 0) {
        let times: number[] = [];
        await wrk(service, 'get', opts.duration, 0, async () => { times = await scrapeTimes(service, opts.duration, opts.scrapes); });
        scrape.underMaxLoad = times;
        await wrk(service, 'get', opts.duration, rate, async () => { times = await scrapeTimes(service, opts.duration, opts.scrapes); });
        scrape.underFixedRate = times;
        log(`  /metrics under GET load: median ${fmt(median(scrape.underMaxLoad), 2)} ms, p99 ${fmt(percentile(scrape.underMaxLoad, 99), 2)} ms (max load); median ${fmt(median(times), 2)} ms, p99 ${fmt(percentile(times, 99), 2)} ms (fixed rate)`);
      }
      reports.push(report);
    }
    for (const server of servers) if (isTraced(server.name)) dropped[server.name] = await droppedSpans(server.metricsPort);
  } finally {
    await cleanUp();
  }

  // ------------------------------------------------------------ output
  const has = (n: ServerName) => serverNames.includes(n);
  // Every server's column, the ratios the goals read, and before/after when a before build runs.
  const maxRows: string[][] = [['scenario', ...serverNames.map((n) => `${n} r/s`), 'service ÷ baseline', 'service ÷ naive', ...(has('before') ? ['before ÷ baseline', 'service ÷ before'] : [])]];
  for (const r of reports) {
    const rps = (n: ServerName) => r.max[n]?.rps;
    maxRows.push([r.label, ...serverNames.map((n) => fmt(rps(n))), fmt(ratio(rps('service'), rps('baseline')), 2), fmt(ratio(rps('service'), rps('naive')), 2),
      ...(has('before') ? [fmt(ratio(rps('before'), rps('baseline')), 2), fmt(ratio(rps('service'), rps('before')), 2)] : [])]);
  }
  const cpuRows: string[][] = [['scenario (at max throughput)', ...serverNames.map((n) => `${n} CPU µs/req`), 'service ÷ baseline', ...(has('before') ? ['before ÷ baseline'] : [])]];
  for (const r of reports) {
    const cpu = (n: ServerName) => r.max[n]?.cpuUsPerRequest;
    cpuRows.push([r.label, ...serverNames.map((n) => fmt(cpu(n))), fmt(ratio(cpu('service'), cpu('baseline')), 2), ...(has('before') ? [fmt(ratio(cpu('before'), cpu('baseline')), 2)] : [])]);
  }
  const latRows: string[][] = [['scenario @ 70 % of baseline max', 'rate r/s', ...serverNames.map((n) => `${n} p50 / p95 / p99 ms`), 'service achieved r/s', 'service p50 ÷ baseline p50', 'service p99 ÷ baseline p99']];
  for (const r of reports) {
    const res = r.fixedRate.results;
    latRows.push([
      r.label,
      fmt(r.fixedRate.rate),
      ...serverNames.map((n) => { const x = res[n]; return x ? `${fmt(x.p50Ms, 2)} / ${fmt(x.p95Ms, 2)} / ${fmt(x.p99Ms, 2)}` : '—'; }),
      fmt(res.service?.achievedRps), fmt(ratio(res.service?.p50Ms, res.baseline?.p50Ms), 2), fmt(ratio(res.service?.p99Ms, res.baseline?.p99Ms), 2),
    ]);
  }
  // At one rate every server sustains, each handles the same requests per second, so its CPU per
  // request is measured under the same batching: the steadiest before/after figure on a busy machine.
  const rateCpuRows: string[][] = [['scenario @ fixed rate', 'rate r/s', ...serverNames.map((n) => `${n} CPU µs/req`), 'service ÷ baseline', ...(has('before') ? ['service ÷ before'] : [])]];
  for (const r of reports) {
    const cpu = (n: ServerName) => r.fixedRate.results[n]?.cpuUsPerRequest;
    rateCpuRows.push([r.label, fmt(r.fixedRate.rate), ...serverNames.map((n) => fmt(cpu(n))), fmt(ratio(cpu('service'), cpu('baseline')), 2), ...(has('before') ? [fmt(ratio(cpu('service'), cpu('before')), 2)] : [])]);
  }
  const memRows = [['server', 'max RSS under load (MB)'], ...serverNames.map((n) => [n, fmt(rssMax[n], 0)])];

  // The goals of issue 16, exactly: nothing more (the tracing rows below are the tracing issue's).
  const byScenario = (s: Scenario) => reports.find((r) => r.scenario === s);
  const goals: { goal: string; value: number | undefined; target: string; ok: boolean | undefined }[] = [];
  const goal = (name: string, value: number | undefined, target: number, atMost = false) =>
    goals.push({ goal: name, value, target: `${atMost ? '≤' : '≥'} ${String(target)}`, ok: value === undefined || Number.isNaN(value) ? undefined : atMost ? value <= target : value >= target });
  if (has('service')) {
    for (const r of reports.filter((x) => API_SCENARIOS.includes(x.scenario))) {
      goal(`${r.label}: service ÷ naive, throughput`, ratio(r.max.service?.rps, r.max.naive?.rps), 1);
    }
    const get = byScenario('get');
    goal('GET by id: service ÷ baseline, throughput', ratio(get?.max.service?.rps, get?.max.baseline?.rps), 0.75);
    goal('GET by id: service ÷ baseline, CPU per request', ratio(get?.max.service?.cpuUsPerRequest, get?.max.baseline?.cpuUsPerRequest), 1.5, true);
    for (const r of reports.filter((x) => API_SCENARIOS.includes(x.scenario))) {
      const service = r.fixedRate.results.service;
      const baseline = r.fixedRate.results.baseline;
      // wrk measures from each send, so a server that cannot keep the rate shows the latency of a
      // closed loop, not of the offered load: that is a miss whatever its percentiles say.
      const sustained = service === undefined || service.achievedRps >= 0.95 * r.fixedRate.rate;
      const note = sustained ? '' : ` (rate not sustained: ${fmt(service.achievedRps)} of ${fmt(r.fixedRate.rate)} r/s)`;
      for (const [p, key] of [['p50', 'p50Ms'], ['p99', 'p99Ms']] as const) {
        const name = `${r.label} ${p} @70 %: service ÷ baseline${note}`;
        if (sustained) goal(name, ratio(service?.[key], baseline?.[key]), 2, true);
        else goals.push({ goal: name, value: ratio(service[key], baseline?.[key]), target: '≤ 2', ok: false });
      }
    }
    if (has('nolimit')) goal('GET by id: limiter on ÷ off (Redis ÷ in-process), throughput', ratio(get?.max.service?.rps, get?.max.nolimit?.rps), 0.9);
    goal('service RSS under load (MB)', rssMax.service, 150, true);
  }
  // Tracing's cost on GET by id, against the same build with tracing off (measured interleaved).
  const tracingRows: string[][] = [['GET by id', 'sampled', 'r/s at max', 'CPU µs/req', 'throughput cost', 'CPU cost per request', 'p99 ms @ 70 %', 'spans dropped']];
  const getReport = byScenario('get');
  // What each feature costs: the same build without it, on GET by id, at the fixed rate (same batching).
  const featureRows: string[][] = [['GET by id @ fixed rate', 'CPU µs/req without it', 'the feature costs µs/req', 'share of the service\'s CPU']];
  for (const n of serverNames.filter(isAblation)) {
    const cpu = (x: ServerName) => getReport?.fixedRate.results[x]?.cpuUsPerRequest;
    const cost = (cpu('service') ?? NaN) - (cpu(n) ?? NaN);
    featureRows.push([WITHOUT_FEATURE[n], fmt(cpu(n)), fmt(cost), `${fmt((100 * cost) / (cpu('service') ?? NaN), 0)} %`]);
  }
  const off = getReport?.max.service;
  const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : `${(x * 100).toFixed(1)} %`);
  if (off) {
    for (const name of ['service', ...Object.keys(TRACED_SERVERS)] as ServerName[]) {
      const on = getReport.max[name];
      if (!on) continue;
      const ratioSampled = isTraced(name) ? TRACED_SERVERS[name] : 0;
      const throughputCost = 1 - on.rps / off.rps;
      const cpuCost = on.cpuUsPerRequest / off.cpuUsPerRequest - 1;
      tracingRows.push([name === 'service' ? 'tracing off' : name, isTraced(name) ? `${String(ratioSampled * 100)} %` : '—', fmt(on.rps), fmt(on.cpuUsPerRequest), name === 'service' ? '—' : pct(throughputCost), name === 'service' ? '—' : pct(cpuCost), fmt(getReport.fixedRate.results[name]?.p99Ms, 2), isTraced(name) ? fmt(dropped[name]) : '—']);
      if (isTraced(name)) goal(`GET by id: tracing at ${String(ratioSampled * 100)} % sampling, CPU cost per request (%)`, cpuCost * 100, ratioSampled === 1 ? 20 : 5, true);
    }
  }
  const goalRows = [['goal', 'measured', 'target', ''], ...goals.map((g) => [g.goal, fmt(g.value, 2), g.target, g.ok === undefined ? '—' : g.ok ? 'met' : 'MISSED'])];
  const scrapeRows = [['/metrics scrape', 'median ms', 'p99 ms'],
    ...(['idle', 'underMaxLoad', 'underFixedRate'] as const).filter((k) => scrape[k]).map((k) => [
      { idle: 'idle', underMaxLoad: 'under max GET load', underFixedRate: 'under GET at 70 % rate' }[k], fmt(median(scrape[k] ?? []), 2), fmt(percentile(scrape[k] ?? [], 99), 2)])];

  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    date: started.toISOString(),
    // Other work on the machine skews every number; the ratios, measured interleaved, suffer least.
    loadAverageAtStart: loadAverageAtStart.map((l) => Math.round(l * 100) / 100),
    loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  };
  const text = [
    `Machine: ${String(machine.cpus)} × ${machine.cpuModel}, ${String(machine.memoryGb)} GB, Node ${machine.node}, ${machine.date}`,
    `Load average (1 min) at start ${fmt(machine.loadAverageAtStart[0], 2)}, at end ${fmt(machine.loadAverageAtEnd[0], 2)}.`,
    `Load: wrk -t${String(opts.threads)} -c${String(opts.connections)}, ${String(opts.repetitions)} × ${String(opts.duration)} s per cell (median), ${String(opts.warmup)} s warm-up; PostgreSQL, Redis, wrk and the server share the machine.`,
    '',
    'Maximum throughput',
    table(maxRows),
    '',
    'Server CPU time per request (user + system, from /proc/<pid>/stat; less sensitive to other load on the machine)',
    table(cpuRows),
    '',
    `Latency at a fixed rate (${String(opts.rateFraction * 100)} % of the baseline maximum)`,
    table(latRows),
    '',
    'Server CPU time per request at that fixed rate',
    table(rateCpuRows),
    '',
    table(memRows),
    '',
    ...(featureRows.length > 1 ? ['What each feature costs (the service minus the same service without it)', table(featureRows), ''] : []),
    ...(scrapeRows.length > 1 ? ['GET /metrics on the metrics port (information; no goal of issue 16)', table(scrapeRows), ''] : []),
    ...(tracingRows.length > 2 ? ['Tracing cost (OTLP/protobuf to a local sink; the same build with tracing off is the reference)', table(tracingRows), `Export requests received by the sink: ${String(sink.received.requests)} (${fmt(sink.received.bytes / 1e6, 1)} MB).`, ''] : []),
    'Goals',
    table(goalRows),
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  mkdirSync(RESULTS, { recursive: true });
  const json = { machine, options: opts, serviceEntry: args['service-entry'], beforeEntry: args['before-entry'], scenarios: reports, rssMaxMb: rssMax, scrapeMs: scrape, goals, table: text };
  const out = `${RESULTS}${args.out}`;
  writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  log(`bench: wrote ${out}`);
}

await main();
