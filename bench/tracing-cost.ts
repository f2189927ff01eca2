/**
 * `npx tsx bench/tracing-cost.ts`: the CPU that tracing adds to one GET-by-id request, measured
 * where a busy machine disturbs it least. `npm run bench` measures the same end to end (wrk,
 * PostgreSQL, Redis); on a shared 2-core machine its throughput moves by far more than the effect.
 *
 * Each mode runs in a child process of its own: the service's request-path middleware (server span,
 * request id, metrics with exemplars, access log to /dev/null), the rate limiter (in-process, with
 * its span) and a database call (its span; the query itself answers at once), composed as app.ts
 * composes them, at a fixed rate. Exports go, as OTLP/protobuf, to a sink in this parent process,
 * so the sink's CPU is not counted. The figure is the child's CPU time (user + system) per request.
 *
 *   npx tsx bench/tracing-cost.ts -- --requests 20000 --rate 2000 --repetitions 5
 */
import { spawn } from 'node:child_process';
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
    child: { type: 'string' },
    sink: { type: 'string' },
    requests: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '2000' },
    repetitions: { type: 'string', default: '5' },
    /** The service's CPU per GET by id from `npm run bench` on a quiet machine (README), for the percentage. */
    'reference-us': { type: 'string', default: '298' },
  },
});

const MODES = { off: undefined, '10 %': 0.1, '100 %': 1 } as const;
type Mode = keyof typeof MODES;

/** One child: builds the traced request path, runs `requests` through it at `rate`, prints its CPU per request. */
async function child(mode: Mode, sinkUrl: string): Promise<void> {
  const ratio = MODES[mode];
  const config = loadConfig(ratio === undefined ? {} : {
    OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: String(ratio),
  });
  const metrics = createMetrics(new Registry());
  const tracing = await createTracing(config.tracing, { droppedSpans: metrics.tracingSpansDropped, flushTimeoutMs: 5000 });
  const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }));
  const limiter = tracedLimiter(createRateLimiter({ redisUrl: undefined, policy: { rps: 1e6, burst: 1e6 }, redisTimeoutMs: 50, log: pino({ level: 'silent' }), metrics, tracing }), tracing);
  const row = { id: 42, name: 'Ada', email: 'ada@example.com', created_at: new Date().toISOString(), updated_at: new Date().toISOString() };
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
  const total = Number(args.requests);
  const perTick = Math.max(1, Math.round(Number(args.rate) / 100));
  for (let i = 0; i < 200; i++) await request();
  const before = process.cpuUsage();
  for (let done = 0; done < total; done += perTick) {
    await Promise.all(Array.from({ length: perTick }, request));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const cpu = process.cpuUsage(before);
  await tracing.shutdown();
  const dropped = (await metrics.tracingSpansDropped.get()).values.reduce((sum, v) => sum + v.value, 0);
  process.stdout.write(`${JSON.stringify({ cpuUsPerRequest: (cpu.user + cpu.system) / total, dropped })}\n`);
}

async function parent(): Promise<void> {
  const sink = await startSink();
  const results: Record<Mode, number[]> = { off: [], '10 %': [], '100 %': [] };
  const dropped: Record<Mode, number> = { off: 0, '10 %': 0, '100 %': 0 };
  const script = fileURLToPath(import.meta.url);
  try {
    for (let rep = 0; rep < Number(args.repetitions); rep++) {
      // Interleaved, so a drift of the machine hits the three alike.
      for (const mode of Object.keys(MODES) as Mode[]) {
        const out = await new Promise<string>((resolve, reject) => {
          const p = spawn(process.execPath, ['--import', 'tsx', script, '--child', mode, '--sink', sink.url, '--requests', args.requests, '--rate', args.rate], { stdio: ['ignore', 'pipe', 'inherit'] });
          let text = '';
          p.stdout.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
          p.once('exit', (code) => { if (code === 0) resolve(text); else reject(new Error(`${mode}: exit ${String(code)}`)); });
        });
        const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { cpuUsPerRequest: number; dropped: number };
        results[mode].push(r.cpuUsPerRequest);
        dropped[mode] += r.dropped;
        process.stderr.write(`  rep ${String(rep + 1)} tracing ${mode.padEnd(5)} ${r.cpuUsPerRequest.toFixed(1)} µs/req\n`);
      }
    }
  } finally {
    await sink.close();
  }
  const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2; };
  const off = median(results.off);
  const reference = Number(args['reference-us']);
  const rows = (Object.keys(MODES) as Mode[]).map((mode) => {
    const m = median(results[mode]);
    const added = m - off;
    return `| ${mode.padEnd(5)} | ${m.toFixed(1).padStart(8)} | ${mode === 'off' ? '       —' : added.toFixed(1).padStart(8)} | ${mode === 'off' ? '      —' : `${((added / reference) * 100).toFixed(1)} %`.padStart(7)} | ${String(dropped[mode]).padStart(7)} |`;
  });
  process.stdout.write([
    '',
    `Tracing CPU per request on the GET-by-id path, ${args.requests} requests at ${args.rate}/s, median of ${args.repetitions} (interleaved)`,
    `(% of ${String(reference)} µs, the whole service's CPU per GET by id; pass --reference-us from a quiet \`npm run bench\`)`,
    '| tracing | µs / req | added µs | of a GET | dropped |',
    '|---------|----------|----------|----------|---------|',
    ...rows,
    `Sink received ${String(sink.received.requests)} export requests (${(sink.received.bytes / 1e6).toFixed(1)} MB).`,
    '',
  ].join('\n'));
}

if (args.child !== undefined) await child(args.child as Mode, args.sink ?? '');
else await parent();
