/**
 * `npx tsx bench/tracing-cost.ts`: the CPU that tracing adds to one GET-by-id request, measured
 * where a busy machine disturbs it least. `npm run bench` measures the same end to end (wrk,
 * PostgreSQL, Redis); on a shared 2-core machine its throughput moves by far more than the effect.
 *
 * One child process per repetition builds the service's request path three times over (tracing
 * off, 10 % and 100 % sampling): the server span, request id, metrics with exemplars, access log to
 * /dev/null, the rate limiter (in-process, with its span) and a database call (its span; the query
 * itself answers at once), composed as app.ts composes them. It then runs them in turns of
 * `--block` requests each, at a fixed rate, so a drift of the machine (other processes, CPU
 * frequency) hits the three alike; each turn's process CPU time (user + system, every thread: GC
 * and the export included) is charged to its mode. Exports go, as OTLP/protobuf, to a sink in this
 * parent process, so the sink's CPU is not counted.
 *
 *   npx tsx bench/tracing-cost.ts -- --requests 10000 --rate 2000 --repetitions 3
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import compose from 'koa-compose';
import type { Context, Middleware } from 'koa';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../service/config.js';
import { accessLog } from '../service/middleware/access-log.js';
import { httpMetrics } from '../service/middleware/http-metrics.js';
import { requestId } from '../service/middleware/request-id.js';
import { createMetrics } from '../service/observability/metrics.js';
import { createTracing } from '../service/observability/tracing.js';
import { tracedLimiter } from '../service/observability/tracing-limiter.js';
import { createRateLimiter } from '../service/ratelimit/create-rate-limiter.js';
import { startSink } from './tracing.js';

const { values: args } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    sink: { type: 'string' },
    /** Requests per mode and repetition. */
    requests: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '2000' },
    /** Requests per turn: each mode runs this many, then the next mode. */
    block: { type: 'string', default: '500' },
    repetitions: { type: 'string', default: '3' },
    /** The service's CPU per GET by id from `npm run bench` on a quiet machine (README), for the percentage. */
    'reference-us': { type: 'string', default: '298' },
  },
});

const MODES = { off: undefined, '10 %': 0.1, '100 %': 1 } as const;
type Mode = keyof typeof MODES;
const MODE_NAMES = Object.keys(MODES) as Mode[];

interface ChildResult {
  cpuUsPerRequest: Record<Mode, number>;
  dropped: Record<Mode, number>;
}

const row = { id: 42, name: 'Ada', email: 'ada@example.com', created_at: new Date().toISOString(), updated_at: new Date().toISOString() };

/** The traced request path of one mode, and a function that sends one GET by id through it. */
async function requestPath(mode: Mode, sinkUrl: string) {
  const ratio = MODES[mode];
  const config = loadConfig(ratio === undefined ? {} : {
    OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: String(ratio),
  });
  const metrics = createMetrics(new Registry());
  const tracing = await createTracing(config.tracing, { droppedSpans: metrics.tracingSpansDropped, flushTimeoutMs: 5000 });
  const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }));
  const limiter = tracedLimiter(createRateLimiter({ redisUrl: undefined, policy: { rps: 1e9, burst: 1e9 }, redisTimeoutMs: 50, log: pino({ level: 'silent' }), metrics, tracing }), tracing);
  const handler: Middleware = async (ctx) => {
    await limiter.consume(`ip:${ctx.ip}`);
    ctx.body = await tracing.dbQuery('users_get', () => Promise.resolve(row));
    ctx.status = 200;
  };
  const stack = [tracing.serverSpan(), requestId(log), httpMetrics(metrics), accessLog(log), handler].filter((m): m is Middleware => m !== undefined);
  const run = compose(stack);
  const request = () => {
    const headers: Record<string, string> = {};
    const ctx = {
      method: 'GET', path: '/api/users/42', protocol: 'http', ip: '10.0.0.1', status: 404, body: undefined as unknown,
      headers, req: { httpVersion: '1.1' }, state: {}, _matchedRoute: '/api/users/:id',
      get: (name: string) => headers[name.toLowerCase()] ?? '',
      set: (name: string, value: string) => { headers[name.toLowerCase()] = value; },
    };
    return run(ctx as unknown as Context);
  };
  const dropped = async () => (await metrics.tracingSpansDropped.get()).values.reduce((sum, v) => sum + v.value, 0);
  return { request, tracing, dropped };
}

/** One repetition: the three request paths in turns; prints each mode's CPU per request. */
async function child(sinkUrl: string): Promise<void> {
  const paths = await Promise.all(MODE_NAMES.map((mode) => requestPath(mode, sinkUrl)));
  const perTick = Math.max(1, Math.round(Number(args.rate) / 100));
  const block = Number(args.block);
  const runAtRate = async (request: () => Promise<unknown>, count: number) => {
    for (let done = 0; done < count; done += perTick) {
      await Promise.all(Array.from({ length: Math.min(perTick, count - done) }, request));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  for (const path of paths) await runAtRate(path.request, 2000);
  const cpu = MODE_NAMES.map(() => 0);
  const total = Number(args.requests);
  for (let done = 0; done < total; done += block) {
    for (const [i, path] of paths.entries()) {
      const before = process.cpuUsage();
      await runAtRate(path.request, block);
      const used = process.cpuUsage(before);
      cpu[i] = (cpu[i] as number) + used.user + used.system;
    }
  }
  const requests = Math.ceil(total / block) * block;
  await Promise.all(paths.map((path) => path.tracing.shutdown()));
  const result: ChildResult = { cpuUsPerRequest: { off: 0, '10 %': 0, '100 %': 0 }, dropped: { off: 0, '10 %': 0, '100 %': 0 } };
  for (const [i, mode] of MODE_NAMES.entries()) {
    result.cpuUsPerRequest[mode] = (cpu[i] as number) / requests;
    result.dropped[mode] = await (paths[i] as Awaited<ReturnType<typeof requestPath>>).dropped();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function parent(): Promise<void> {
  const sink = await startSink();
  const results: Record<Mode, number[]> = { off: [], '10 %': [], '100 %': [] };
  const dropped: Record<Mode, number> = { off: 0, '10 %': 0, '100 %': 0 };
  const script = fileURLToPath(import.meta.url);
  const loadBefore = loadavg()[0] as number;
  try {
    for (let rep = 0; rep < Number(args.repetitions); rep++) {
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', script, '--child', '--sink', sink.url, '--requests', args.requests, '--rate', args.rate, '--block', args.block], { stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        p.stdout.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
        p.once('exit', (code) => { if (code === 0) resolve(text); else reject(new Error(`repetition ${String(rep + 1)}: exit ${String(code)}`)); });
      });
      const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ChildResult;
      for (const mode of MODE_NAMES) {
        results[mode].push(r.cpuUsPerRequest[mode]);
        dropped[mode] += r.dropped[mode];
      }
      process.stderr.write(`  rep ${String(rep + 1)}: ${MODE_NAMES.map((mode) => `${mode} ${r.cpuUsPerRequest[mode].toFixed(1)}`).join(' | ')} µs/req\n`);
    }
  } finally {
    await sink.close();
  }
  const off = median(results.off);
  const reference = Number(args['reference-us']);
  const rows = MODE_NAMES.map((mode) => {
    const m = median(results[mode]);
    const added = m - off;
    return `| ${mode.padEnd(7)} | ${m.toFixed(1).padStart(8)} | ${mode === 'off' ? '       —' : added.toFixed(1).padStart(8)} | ${mode === 'off' ? '                —' : `${((added / reference) * 100).toFixed(1)} %`.padStart(17)} | ${String(dropped[mode]).padStart(7)} |`;
  });
  process.stdout.write([
    '',
    `Tracing CPU per request on the GET-by-id path, ${args.requests} requests per mode at ${args.rate}/s in turns of ${args.block}, median of ${args.repetitions}`,
    `(load average ${loadBefore.toFixed(1)} → ${(loadavg()[0] as number).toFixed(1)}; % of ${String(reference)} µs, the whole service's CPU per GET by id on a quiet machine: pass --reference-us from a quiet \`npm run bench\`)`,
    `| tracing | µs / req | added µs | of a GET (${String(reference)} µs) | dropped |`,
    '|---------|----------|----------|-------------------|---------|',
    ...rows,
    `Sink received ${String(sink.received.requests)} export requests (${(sink.received.bytes / 1e6).toFixed(1)} MB).`,
    '',
  ].join('\n'));
}

if (args.child) await child(args.sink ?? '');
else await parent();
